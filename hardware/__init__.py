"""dxmacro stage: hardware."""
