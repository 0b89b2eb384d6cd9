"""Run inside the arm64 chroot by scripts/arm64_check.sh: the device side, installed from
wheels only, decodes and runs the simulated control loop; torch/tensorflow never load."""

import platform
import subprocess
import sys
from pathlib import Path

print(f"python {platform.python_version()} on {platform.machine()}")
cmd = [sys.executable, "-m", "dxmacro", "device", "run", "--simulate", "--duration", "5"]
config = Path("/opt/dxmacro/device.toml")
model = '[model]\ndecoder = "bundle"\nbundle = "/opt/dxmacro/model.dxm"\nallow_unsigned = true\n' if Path("/opt/dxmacro/model.dxm").exists() else ""
config.write_text(model + '[midi]\nprofile = "dx7"\n')
proc = subprocess.run(cmd + ["--config", str(config)], capture_output=True, text=True)
print(proc.stdout[-2000:], proc.stderr[-2000:])
if proc.returncode:
    sys.exit(f"simulated device run failed with exit code {proc.returncode}")
import dx7  # noqa: E402,F401
import device.runtime  # noqa: E402,F401

heavy = sorted(m for m in ("torch", "tensorflow", "dexed") if m in sys.modules)
if heavy:
    sys.exit(f"the device import path loaded {heavy}")
print("device side OK on", platform.machine())
