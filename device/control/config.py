"""The device's TOML configuration: schema, defaults and validation.

Every problem ends in one DxmacroError that names the file, the key and what is
allowed ("dxmacro.toml: [midi] profile must be one of dx7, dexed, cc, got 'dx8'");
unknown keys are refused too, since a typo silently falling back to a default is
the hardest bug to find on stage. Relative paths are relative to the config file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dx7.params import BY_NAME, LEARNABLE_COUNT
from device.control.budget import DIN_BYTES_PER_S, MAX_DIN_FRACTION
from device.control.midi_knobs import MODES as CC_MODES
from device.control.ports import BUTTON_EVENTS
from device.control.profiles import PROFILES
from device.control.smoothing import SmoothingSettings
from dxmacro.errors import DxmacroError
from dxmacro.inputs import problem
from hardware.ads1x15 import ADDRESSES as ADC_ADDRESSES, PGA, Chip


@dataclass(frozen=True)
class KnobConfig:
    channel: int
    knob: int | None = None  # index into the bundle's knob list
    dim: int | None = None  # or a latent dimension directly
    name: str | None = None
    range: tuple[float, float] | None = None
    curve: str | float = "linear"
    invert: bool = False
    cc: int | None = None  # a controller's knob: the CC it sends (the MSB's for 14bit); None: an ADC pot
    cc_channel: int = 0  # 1..16, or 0 for any channel
    cc_mode: str = "absolute"  # device.control.midi_knobs.MODES
    cc_step: float = 1.0 / 128  # relative encoders: travel of one detent

    @property
    def midi(self) -> bool:
        return self.cc is not None


@dataclass(frozen=True)
class Config:
    path: Path
    rate_hz: float = 1000.0
    log_level: str = "info"
    bank_file: Path | None = None
    random_seed: int | None = None
    decoder: str = "linear"
    bundle: Path | None = None
    decoder_seed: int = 0
    watch_bundle: bool = True
    watch_interval_s: float = 2.0
    store: Path | None = None  # the flash service's store: follow its `active` pointer
    public_key: Path | None = None  # verify a bundle's signature when it is loaded from `bundle`
    allow_unsigned: bool = False  # `bundle` without `public_key` loads unverified only when this says so
    status_path: Path | None = None  # status.json for the flash service (docs/flashing.md)
    adc_channels: int = 4
    data_rate: int = 860
    adc_spin_us: float = 300.0  # end of each conversion wait spent polling the clock (hardware.clock.RealClock)
    adc_bus: int = 1
    adc_address: int = 0x48
    adc_addresses: tuple[int, ...] = (0x48,)
    adc_chip: str = "ADS1115"
    adc_fsr: float = 4.096
    adc_vref: float = 3.3
    smoothing: SmoothingSettings = SmoothingSettings()
    takeover: str = "pickup"
    knob_mode: str = "relative"  # [knobs] mode: "relative" edits the chosen voice, "absolute" sends decode(z)
    knobs: tuple[KnobConfig, ...] = ()
    profile: str = "dx7"
    port: str = ""
    midi_api: str = "alsa"
    din_baudrate: int = 31250
    channel: int = 1  # 1..16 as on the synth's panel
    budget_fraction: float | None = None
    cc_map: dict[str, int] = field(default_factory=dict)
    echo_ccs: tuple[int, ...] = ()
    midi_input: str = ""  # [midi] input: the performer's MIDI in (Program Change, bulk dumps); "" = none
    midi_input_api: str = "alsa"
    midi_input_channel: int = 0  # 1..16, or 0 for any channel
    thru: bool = True  # [midi] thru: notes, bend, mod wheel, aftertouch, sustain from the input to the synth
    echo_channel: int = 16
    echo_port: str = ""
    reopen_interval_s: float = 0.25
    buttons: dict[str, int] = field(default_factory=dict)
    leds: dict[str, int] = field(default_factory=dict)
    display: str = "none"  # "none", "ssd1306", "png"
    display_bus: int = 1
    display_address: int = 0x3C
    display_png: Path | None = None
    sim_script: Path | None = None
    sim_noise_lsb: float = 3.0
    sim_fail_rate: float = 0.0

    @property
    def uses_adc(self) -> bool:
        """The ADC board is read when a knob is a pot, or no [[knob]] tables name the knobs."""
        return not self.knobs or any(not k.midi for k in self.knobs)

    @property
    def byte_rate(self) -> float | None:
        """Bytes per second the profile may use (None = unlimited)."""
        return None if self.budget_fraction is None else self.budget_fraction * DIN_BYTES_PER_S


class _Section:
    """Typed access to one TOML table that remembers which keys were used."""

    def __init__(self, where: str, name: str, table: Any) -> None:
        if not isinstance(table, dict):
            raise DxmacroError(f"{where}: [{name}] must be a table")
        self.where, self.name, self.table, self.used = where, name, table, set()

    def _err(self, key: str, msg: str) -> DxmacroError:
        return DxmacroError(f"{self.where}: [{self.name}] {key} {msg}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, *, lo: float | None = None,
            hi: float | None = None, choices: tuple | None = None) -> Any:
        self.used.add(key)
        if key not in self.table:
            return default
        v = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self._err(key, f"must be {names}, got {v!r}")
        if choices is not None and v not in choices:
            raise self._err(key, f"must be one of {', '.join(map(str, choices))}, got {v!r}")
        if isinstance(v, float) or lo is not None or hi is not None:  # NaN passes every comparison
            why = problem(v, lo=lo, hi=hi, integer=isinstance(v, int))
            if why is not None:
                raise self._err(key, why)
        return v

    def path(self, key: str, base: Path) -> Path | None:
        v = self.get(key, str)
        return None if not v else (base / Path(v).expanduser())

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise DxmacroError(f"{self.where}: [{self.name}] unknown key {unknown[0]!r} "
                               f"(known: {', '.join(sorted(self.used))})")


SECTIONS = ("device", "model", "adc", "smoothing", "knobs", "knob", "midi", "buttons", "leds", "display", "simulate")


def load_config(path: str | Path) -> Config:
    p = Path(path)
    where = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DxmacroError(f"{where}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DxmacroError(f"{where}: cannot read config ({exc})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DxmacroError(f"{where}: not valid TOML ({exc})") from None
    return parse_config(doc, p)


def parse_config(doc: dict[str, Any], path: Path) -> Config:
    where = str(path)
    base = path.resolve().parent
    unknown = sorted(set(doc) - set(SECTIONS))
    if unknown:
        raise DxmacroError(f"{where}: unknown section [{unknown[0]}] (known: {', '.join(SECTIONS)})")
    kw: dict[str, Any] = {"path": path}

    s = _Section(where, "device", doc.get("device", {}))
    kw["rate_hz"] = s.get("rate_hz", float, 1000.0, lo=1.0, hi=10000.0)
    kw["log_level"] = s.get("log_level", str, "info", choices=("debug", "info", "warning", "error"))
    kw["bank_file"] = s.path("bank_file", base)
    kw["random_seed"] = s.get("random_seed", int)
    kw["status_path"] = s.path("status_file", base)
    s.finish()
    if kw["status_path"] is not None and not kw["status_path"].parent.is_dir():
        raise DxmacroError(f"{where}: [device] status_file {kw['status_path']}: folder "
                           f"{kw['status_path'].parent} does not exist (the flash service could never see "
                           f"the loop healthy)")

    s = _Section(where, "model", doc.get("model", {}))
    kw["decoder"] = s.get("decoder", str, "linear", choices=("linear", "bundle"))
    kw["bundle"] = s.path("bundle", base)
    kw["store"] = s.path("store", base)
    kw["public_key"] = s.path("public_key", base)
    kw["allow_unsigned"] = s.get("allow_unsigned", bool, False)
    kw["decoder_seed"] = s.get("seed", int, 0)
    kw["watch_bundle"] = s.get("watch", bool, True)
    kw["watch_interval_s"] = s.get("watch_interval_s", float, 2.0, lo=0.1, hi=3600.0)
    s.finish()
    if kw["decoder"] == "bundle" and kw["bundle"] is None and kw["store"] is None:
        raise DxmacroError(f"{where}: [model] decoder = \"bundle\" needs bundle = \"path/to/model bundle\" "
                           f"or store = \"/var/lib/dxmacro/store\"")
    if kw["bundle"] is not None and kw["store"] is not None:
        raise DxmacroError(f"{where}: [model] give either bundle (one file) or store (the flash service's), not both")
    if kw["bundle"] is not None and kw["public_key"] is None and not kw["allow_unsigned"]:
        raise DxmacroError(f"{where}: [model] bundle = \"{kw['bundle']}\" cannot be verified without "
                           f"public_key = \"/etc/dxmacro/signing.pub\" (or, for development only, "
                           f"allow_unsigned = true)")

    s = _Section(where, "adc", doc.get("adc", {}))
    chip = Chip(s.get("chip", str, "ADS1115", choices=tuple(c.value for c in Chip)))
    kw["adc_chip"] = chip.value
    kw["adc_bus"] = s.get("i2c_bus", int, 1, lo=0, hi=255)
    address = s.get("address", int, None, choices=ADC_ADDRESSES)
    addresses = s.get("addresses", list, None)
    if address is not None and addresses is not None:
        raise DxmacroError(f"{where}: [adc] give either address (one chip) or addresses (several), not both")
    if addresses is not None:
        if not addresses or not all(isinstance(a, int) and not isinstance(a, bool) and a in ADC_ADDRESSES
                                    for a in addresses) or len(set(addresses)) != len(addresses):
            raise DxmacroError(f"{where}: [adc] addresses must be different chip addresses from "
                               f"{', '.join(f'0x{a:02X}' for a in ADC_ADDRESSES)}, got {addresses!r}")
        kw["adc_addresses"] = tuple(addresses)
    else:
        kw["adc_addresses"] = (0x48 if address is None else address,)
    kw["adc_address"] = kw["adc_addresses"][0]
    kw["adc_channels"] = s.get("channels", int, 4, lo=1, hi=4 * len(kw["adc_addresses"]))
    rates = tuple(sorted(set(chip.data_rates)))
    kw["data_rate"] = s.get("data_rate", int, max(rates), choices=rates)
    kw["adc_fsr"] = s.get("full_scale_v", float, 4.096, choices=tuple(sorted(PGA)))
    kw["adc_vref"] = s.get("pot_supply_v", float, 3.3, lo=0.5, hi=5.5)
    kw["adc_spin_us"] = s.get("spin_us", float, 300.0, lo=0.0, hi=2000.0)
    s.finish()
    if kw["adc_vref"] > kw["adc_fsr"] + 1e-9:
        raise DxmacroError(f"{where}: [adc] full_scale_v {kw['adc_fsr']} is below the pots' supply "
                           f"pot_supply_v {kw['adc_vref']}: the top of each knob's travel would clip")

    s = _Section(where, "smoothing", doc.get("smoothing", {}))
    d = SmoothingSettings()
    kw["smoothing"] = SmoothingSettings(
        min_cutoff_hz=s.get("min_cutoff_hz", float, d.min_cutoff_hz, lo=0.01, hi=100.0),
        beta=s.get("beta", float, d.beta, lo=0.0, hi=10000.0),
        d_cutoff_hz=s.get("d_cutoff_hz", float, d.d_cutoff_hz, lo=0.01, hi=100.0),
        hysteresis=s.get("hysteresis", float, d.hysteresis, lo=0.0, hi=0.2),
        pickup_tolerance=s.get("pickup_tolerance", float, d.pickup_tolerance, lo=0.0, hi=0.5),
    )
    kw["takeover"] = s.get("takeover", str, "pickup", choices=("pickup", "jump"))
    s.finish()

    s = _Section(where, "knobs", doc.get("knobs", {}))
    kw["knob_mode"] = s.get("mode", str, "relative", choices=("relative", "absolute"))
    s.finish()

    knobs = doc.get("knob", [])
    if not isinstance(knobs, list):
        raise DxmacroError(f"{where}: knobs are [[knob]] tables (an array of tables)")
    parsed = []
    for i, table in enumerate(knobs):
        s = _Section(where, f"knob {i + 1}", table)
        rng = s.get("range", list)
        if rng is not None:
            if len(rng) != 2 or any(problem(x) for x in rng) or rng[0] == rng[1]:
                raise DxmacroError(f"{where}: [knob {i + 1}] range must be two different numbers (finite) "
                                   f"[low, high], got {rng!r}")
            rng = (float(rng[0]), float(rng[1]))
        curve = s.get("curve", (str, float), "linear")
        if isinstance(curve, str) and curve not in ("linear", "centre"):
            raise DxmacroError(f"{where}: [knob {i + 1}] curve must be \"linear\", \"centre\" or a positive "
                               f"number, got {curve!r}")
        if isinstance(curve, float) and not 0.05 <= curve <= 20:
            raise DxmacroError(f"{where}: [knob {i + 1}] curve exponent must be in 0.05..20, got {curve}")
        k = KnobConfig(channel=s.get("channel", int, i, lo=0, hi=15), knob=s.get("knob", int, None, lo=0, hi=255),
                       dim=s.get("dim", int, None, lo=0, hi=4095), name=s.get("name", str), range=rng,
                       curve=curve, invert=s.get("invert", bool, False), cc=s.get("cc", int, None, lo=0, hi=119),
                       cc_channel=s.get("cc_channel", int, 0, lo=0, hi=16),
                       cc_mode=s.get("cc_mode", str, "absolute", choices=CC_MODES),
                       cc_step=s.get("cc_step", float, 1.0 / 128, lo=1e-4, hi=0.5))
        s.finish()
        if k.knob is not None and k.dim is not None:
            raise DxmacroError(f"{where}: [knob {i + 1}] give either knob (the bundle's knob number) or dim, not both")
        if k.midi:
            if "channel" in table:
                raise DxmacroError(f"{where}: [knob {i + 1}] a controller's knob (cc) has no ADC channel; "
                                   f"give cc_channel for its MIDI channel")
            if k.cc_mode == "14bit" and k.cc >= 32:  # type: ignore[operator]
                raise DxmacroError(f"{where}: [knob {i + 1}] a 14-bit control's cc is its MSB, 0..31 (LSB cc + 32), "
                                   f"got {k.cc}")
            parsed.append(k)
            continue
        if k.channel >= kw["adc_channels"]:
            raise DxmacroError(f"{where}: [knob {i + 1}] channel {k.channel} but [adc] channels = "
                               f"{kw['adc_channels']}")
        parsed.append(k)
    chans = [k.channel for k in parsed if not k.midi]
    if len(set(chans)) != len(chans):
        raise DxmacroError(f"{where}: two [[knob]] tables use the same ADC channel")
    kw["knobs"] = tuple(parsed)

    s = _Section(where, "midi", doc.get("midi", {}))
    kw["profile"] = s.get("profile", str, "dx7", choices=PROFILES)
    kw["port"] = s.get("port", str, "")
    kw["midi_api"] = s.get("api", str, "alsa", choices=("alsa", "jack", "din"))
    kw["din_baudrate"] = s.get("baudrate", int, 31250, choices=(31250, 38400))
    kw["channel"] = s.get("channel", int, 1, lo=1, hi=16)
    default_fraction = MAX_DIN_FRACTION if kw["profile"] == "dx7" else None
    frac = s.get("budget_fraction", float, default_fraction, lo=0.01, hi=1.0)
    if kw["profile"] == "dx7" and frac is not None and frac > MAX_DIN_FRACTION:
        raise DxmacroError(f"{where}: [midi] budget_fraction for the dx7 profile is at most {MAX_DIN_FRACTION} "
                           f"(80 % of DIN MIDI's 3125 bytes/s), got {frac}")
    kw["budget_fraction"] = frac
    cc_map = s.get("cc_map", dict, {})
    for name, cc in cc_map.items():
        if name not in BY_NAME or BY_NAME[name].index >= LEARNABLE_COUNT:
            raise DxmacroError(f"{where}: [midi.cc_map] {name!r} is not a DX7 voice parameter name "
                               f"(e.g. op1_output_level, algorithm, feedback)")
        if not isinstance(cc, int) or isinstance(cc, bool) or not 0 <= cc <= 119:
            raise DxmacroError(f"{where}: [midi.cc_map] {name} must be a CC number 0..119, got {cc!r}")
    if kw["profile"] == "cc" and not cc_map:
        raise DxmacroError(f"{where}: [midi] profile = \"cc\" needs a [midi.cc_map] table (parameter = CC number)")
    kw["cc_map"] = dict(cc_map)
    echo = s.get("echo_ccs", list, [])
    if not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 119 for c in echo):
        raise DxmacroError(f"{where}: [midi] echo_ccs must be CC numbers 0..119, got {echo!r}")
    kw["echo_ccs"] = tuple(echo)
    kw["echo_channel"] = s.get("echo_channel", int, 16, lo=1, hi=16)
    kw["echo_port"] = s.get("echo_port", str, "")
    kw["reopen_interval_s"] = s.get("reopen_interval_s", float, 0.25, lo=0.01, hi=1.0)
    kw["midi_input"] = s.get("input", str, "")
    kw["midi_input_api"] = s.get("input_api", str, "jack" if kw["midi_api"] == "jack" else "alsa",
                                 choices=("alsa", "jack"))
    kw["midi_input_channel"] = s.get("input_channel", int, 0, lo=0, hi=16)
    kw["thru"] = s.get("thru", bool, True)
    s.finish()
    if any(k.midi for k in kw["knobs"]) and not kw["midi_input"]:
        raise DxmacroError(f"{where}: a [[knob]] has cc (a controller's knob) but [midi] input names no "
                           f"MIDI input port")

    s = _Section(where, "buttons", doc.get("buttons", {}))
    pins = {}
    for ev in BUTTON_EVENTS:
        pin = s.get(ev, int, None, lo=0, hi=27)
        if pin is not None:
            pins[ev] = pin
    s.finish()
    if len(set(pins.values())) != len(pins):
        raise DxmacroError(f"{where}: [buttons] two buttons share a GPIO pin")
    kw["buttons"] = pins

    s = _Section(where, "leds", doc.get("leds", {}))
    leds = {}
    for name in ("link", "activity"):
        pin = s.get(name, int, None, lo=0, hi=27)
        if pin is not None:
            leds[name] = pin
    s.finish()
    if set(leds.values()) & set(pins.values()) or len(set(leds.values())) != len(leds):
        raise DxmacroError(f"{where}: [leds] an LED shares a GPIO pin with another LED or a button")
    kw["leds"] = leds

    s = _Section(where, "display", doc.get("display", {}))
    kw["display"] = s.get("kind", str, "none", choices=("none", "ssd1306", "png"))
    kw["display_bus"] = s.get("i2c_bus", int, 1, lo=0, hi=255)
    kw["display_address"] = s.get("address", int, 0x3C, choices=(0x3C, 0x3D))
    kw["display_png"] = s.path("png", base)
    s.finish()
    if kw["display"] == "png" and kw["display_png"] is None:
        raise DxmacroError(f"{where}: [display] kind = \"png\" needs png = \"path/to/screen.png\"")

    s = _Section(where, "simulate", doc.get("simulate", {}))
    kw["sim_script"] = s.path("script", base)
    kw["sim_noise_lsb"] = s.get("noise_lsb", float, 3.0, lo=0.0, hi=1000.0)
    kw["sim_fail_rate"] = s.get("fail_rate", float, 0.0, lo=0.0, hi=0.9)
    s.finish()
    return Config(**kw)
