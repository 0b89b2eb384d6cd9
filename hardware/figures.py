"""Print the hardware layer's figures: emulated ADC noise against the datasheet, and (when
jackd is installed) JACK MIDI latency, dead-server detection and port reopen times.

Run: ``python -m hardware.figures``"""

from __future__ import annotations

import time

import numpy as np

from hardware.ads1x15 import ADS1x15, AdcSettings, Chip
from hardware.ads1x15_sim import EmulatedADS1x15, noise_sigma_volts
from hardware.clock import SimClock
from hardware.i2c import FakeI2CBus


def adc_noise() -> None:
    print("ADC noise, 4000 single-shot conversions at 1.0 V (emulated; sigma = datasheet uVpp / 6.6)")
    print(f"{'chip':8} {'SPS':>5} {'FSR':>6} {'model sigma LSB':>16} {'measured std LSB':>17} {'p-p codes':>9}")
    for chip, rate, fsr in [(Chip.ADS1115, 8, 4.096), (Chip.ADS1115, 128, 4.096), (Chip.ADS1115, 860, 4.096),
                            (Chip.ADS1115, 860, 0.256), (Chip.ADS1015, 3300, 4.096)]:
        clock, bus = SimClock(), FakeI2CBus()
        sim = EmulatedADS1x15(chip, clock=clock, seed=1)
        bus.attach(0x48, sim)
        adc = ADS1x15(bus, 0x48, AdcSettings(chip, fsr, rate), clock)
        sim.set_input(0, min(1.0, fsr * 0.9))
        codes = np.array([adc.read_raw(0) for _ in range(4000)])
        model = noise_sigma_volts(chip, rate, fsr) / adc.lsb_volts
        print(f"{chip.value:8} {rate:5d} {fsr:6.3f} {model:16.3f} {codes.std():17.3f} {np.ptp(codes):9d}")


def jack_figures() -> None:
    from dx7.sysex import DumpRequest
    from hardware.dx7_emulator import DX7Emulator
    from hardware.errors import HardwareError
    from hardware.jack import JackServer
    from hardware.midi import ReopeningOutput, RtMidiInput, RtMidiOutput

    try:
        server = JackServer("dxmacro-figures").start()
    except HardwareError as exc:
        print(f"JACK figures skipped: {exc}")
        return
    try:
        with DX7Emulator("dx7fig", 1) as emu:
            out = RtMidiOutput(emu.input_port, client_name="fig-out")
            inp = RtMidiInput(emu.output_port, client_name="fig-in")
            lat = []
            for _ in range(50):
                t0 = time.monotonic()
                out.send(DumpRequest(0, 0).encode())
                arrived, _ = inp.receive(2.0)
                lat.append((emu.log()[-1].time - t0, arrived - t0))
                time.sleep(0.01)
            one_way, round_trip = np.array(lat).T * 1e3
            print(f"JACK dummy (48 kHz, 1024-frame periods): send->emulator median {np.median(one_way):.1f} ms "
                  f"(max {one_way.max():.1f}); dump request->163-byte reply median {np.median(round_trip):.1f} ms "
                  f"(max {round_trip.max():.1f})")
            ro = ReopeningOutput(lambda: RtMidiOutput(emu.input_port, client_name="fig-reopen"), emu.input_port,
                                 poll_interval=0.2).start()
            emu.unplug(0.5)
            while (back := emu.state()["ports_back_at"]) is None or not ro.connected:
                time.sleep(0.01)
            print(f"port back -> reopened: {(ro.reopened_at - back) * 1e3:.0f} ms (poll interval 200 ms)")
            ro.close()
            server.kill()
            t0 = time.monotonic()
            try:
                inp.receive(30.0)
            except HardwareError:
                print(f"jackd killed -> receive raised PortGone after {(time.monotonic() - t0) * 1e3:.0f} ms")
    finally:
        server.stop()
        server.restore_env()


if __name__ == "__main__":
    adc_noise()
    jack_figures()
