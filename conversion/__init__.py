"""dxmacro stage: conversion."""
