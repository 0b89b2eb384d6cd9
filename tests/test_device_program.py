"""Program Change and bulk dumps from the performer's MIDI input, on a simulated clock into the
emulated DX7 (relative knobs: the synth holds each chosen voice exactly)."""

from __future__ import annotations

import numpy as np

from conversion.runtime import Anchor
from dx7 import Voice
from dx7.sysex import BulkDump
from device.control.program import NewVoices, ProgramInput, SelectProgram, with_latents
from device.twins.linear_decoder import LinearDecoder
from device.twins.sim import KnobScript
from tests.device_helpers import make_loop


class Inbox:
    """A MidiIn twin: what a test puts in arrives at the next poll."""

    def __init__(self) -> None:
        self.pending: list[bytes] = []

    def poll(self) -> list[bytes]:
        out, self.pending = self.pending, []
        return out


def _bank(n: int = 32, seed: int = 3) -> list[Voice]:
    rng = np.random.default_rng(seed)
    return [Voice.init().replace({"algorithm": int(rng.integers(0, 32)), "feedback": int(rng.integers(0, 8)),
                                  "op2_output_level": int(rng.integers(0, 100))}, name=f"RECV {i:02d}")
            for i in range(n)]


def test_program_input_reads_program_change_bank_select_and_dumps():
    p = ProgramInput(channel=2)
    assert p.feed(bytes([0xC2, 5])) == SelectProgram(5)
    assert p.feed(bytes([0xC0, 5])) is None  # another channel
    assert p.feed(bytes([0xB2, 0, 1])) is None and p.feed(bytes([0xC2, 3])) == SelectProgram(131)  # MSB 1
    dump = BulkDump.of(_bank(), channel=2).encode()
    got = p.feed(dump)
    assert isinstance(got, NewVoices) and [v.name for v in got.voices] == [v.name for v in _bank()]
    corrupt = dump[:-2] + bytes([(dump[-2] + 1) & 0x7F, 0xF7])  # bad checksum: refused, said, no exception
    assert p.feed(corrupt) is None
    assert ProgramInput(None).feed(bytes([0xC9, 7])) == SelectProgram(7)  # any channel


def test_received_voices_take_the_latent_of_the_nearest_carried_voice():
    dec = LinearDecoder()
    anchors = dec.anchors
    got = with_latents(tuple(a.voice for a in anchors), dec)
    for a, g in zip(anchors, got):  # an anchor's own voice is nearest to itself
        assert np.array_equal(g.latent, a.latent) and g.voice == a.voice


def test_program_change_selects_the_voice_and_a_dump_brings_new_ones():
    dec = LinearDecoder()
    cartridge = _bank(seed=9)
    voices = with_latents(tuple(cartridge), dec)
    inbox = Inbox()
    received: list[tuple[Anchor, ...]] = []
    loop, clock, adc, synth = make_loop(KnobScript(len(dec.knobs)), decoder=dec, voices=voices)
    loop.midi_in, loop.on_received = inbox, received.append
    loop.run(until=0.3)
    assert synth.voice == cartridge[0]
    for n in (7, 31, 2):
        inbox.pending.append(bytes([0xC0, n]))
        loop.run(until=clock.now() + 0.3)
        assert synth.voice == cartridge[n] and loop.voice_name == cartridge[n].name
    inbox.pending.append(bytes([0xC0, 40]))  # beyond the 32 voices: said, nothing changes
    loop.run(until=clock.now() + 0.3)
    assert synth.voice == cartridge[2] and loop.display_state().message == "no voice 41"
    new = _bank(seed=11)
    inbox.pending.append(BulkDump.of(new).encode())
    loop.run(until=clock.now() + 0.3)
    assert synth.voice == new[0] and len(received) == 1 and len(received[0]) == 32
    inbox.pending.append(bytes([0xC0, 5]))
    loop.run(until=clock.now() + 0.3)
    assert synth.voice == new[5]
    assert synth.errors == []


def test_received_voices_are_kept_as_the_devices_own_bank(tmp_path):
    from device.flashing.bank_follow import keep_received, received_voices

    dec = LinearDecoder()
    voices = with_latents(tuple(_bank(seed=13)), dec)
    keep_received(tmp_path, "model-a", voices)
    got, why = received_voices(tmp_path, "model-a", dec.latent_size)
    assert [a.voice for a in got] == [a.voice for a in voices] and "received over MIDI" in why
    assert all(np.array_equal(a.latent, b.latent) for a, b in zip(got, voices))
    assert received_voices(tmp_path, "model-b", dec.latent_size)[0] is None  # latents of another model
    (tmp_path / "banks" / "local" / "received.dxb").write_bytes(b"DXVL" + bytes(10))  # corrupt: anchors, said
    none, why = received_voices(tmp_path, "model-a", dec.latent_size)
    assert none is None and "anchors" in why
