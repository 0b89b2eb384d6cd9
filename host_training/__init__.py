"""dxmacro stage: host_training."""
