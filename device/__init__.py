"""dxmacro stage: device."""
