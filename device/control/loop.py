"""The control loop: knobs in, MIDI out, at a fixed rate.

One tick: apply a pending decoder swap, handle button presses, scan the knobs (the
ADC read blocks for one conversion per channel), smooth each reading, take the knob
over softly after a voice change, map live knobs to latent values, decode only when
the latent code changed, and hand the resulting DX7 values to the output profile,
which sends what the synth lacks within the byte budget. A vanished MIDI port never
stops the loop: the link is marked down and reopened every ``reopen_interval_s``;
the voice is sent whole once it is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from dx7 import Voice
from dx7.params import HIGHS, LEARNABLE_COUNT
from dx7.voice import encode_name
from device.control.budget import ByteBudget
from device.control.controls import AnchorCycler, PriorSampler, VoiceBank, VoiceChoice
from device.control.display import DisplayState, KnobView
from device.control.learn import Learner
from device.control.mapping import KnobMapping, latent_from
from device.control.midi_knobs import MidiKnobs
from device.control.notify import Notifier
from device.control.ports import Anchor, Buttons, Clock, Decoder, Display, KnobReader, MidiIn, MidiOut, PortGone
from device.control.program import NewVoices, ProgramInput, SelectProgram, with_latents
from device.control.relative import dead_zone
from dx7.relative import relative_voice, tuned_voice
from device.control.profiles import CCProfile, EchoCC, SysexProfile, panic_messages
from device.control.smoothing import KnobChannel, SmoothingSettings
from device.control.thru import Thru
from dxmacro.errors import DxmacroError

log = logging.getLogger("dxmacro.device")
_HIGHS = np.array(HIGHS[:LEARNABLE_COUNT])


@dataclass(frozen=True)
class LoopSettings:
    rate_hz: float = 1000.0  # capped by the ADC: the loop never ticks faster than one scan
    smoothing: SmoothingSettings = SmoothingSettings()
    takeover: str = "pickup"  # or "jump": knobs take over at once after a voice change
    knob_mode: str = "relative"  # or "absolute": the knobs send decode(z), not the voice plus its change
    reopen_interval_s: float = 0.25
    display_period_s: float = 0.1
    random_seed: int | None = None


@dataclass
class LoopStats:
    ticks: int = 0
    overruns: int = 0
    decodes: int = 0
    messages: int = 0
    bytes: int = 0
    read_failures: int = 0
    port_gone: int = 0
    reopened: int = 0
    decode_errors: int = 0
    swaps: int = 0
    tick_starts: list[float] = field(default_factory=list)
    record_ticks: bool = False
    cc_latencies: list[float] = field(default_factory=list)  # knob CC arrival -> first byte sent (record_ticks)


class ControlLoop:
    def __init__(self, *, knobs: KnobReader, port: MidiOut, decoder: Decoder,
                 mappings: Callable[[Decoder], list[KnobMapping]], profile: SysexProfile | CCProfile,
                 clock: Clock, budget: ByteBudget | None = None, echo: EchoCC | None = None,
                 echo_port: MidiOut | None = None, buttons: Buttons | None = None, display: Display | None = None,
                 notifier: Notifier | None = None, bank: VoiceBank | None = None,
                 voices: tuple[Anchor, ...] | None = None, midi_in: MidiIn | None = None,
                 on_received: Callable[[tuple[Anchor, ...]], None] | None = None,
                 settings: LoopSettings = LoopSettings(), program_channel: int | None = None,
                 midi_knobs: MidiKnobs | None = None, thru: Thru | None = None) -> None:
        """``voices``: what next / previous step through (a voice bank's voices with their latents
        for this decoder); None: the decoder's anchors. ``midi_in``: the performer's MIDI input, one
        port shared by everything that listens to it (``_route``): control changes of ``midi_knobs``
        (a controller's knobs, also part of ``knobs``), what ``thru`` passes to the synth (notes,
        bend, mod wheel, aftertouch, sustain), and Program Change / bulk dumps (device.control.program,
        on ``program_channel`` 0..15, None: any); ``on_received`` keeps received voices."""
        self.knobs, self.port, self.clock = knobs, port, clock
        self.profile, self.budget, self.echo = profile, budget, echo
        self.echo_port = echo_port
        self.buttons, self.display, self.notifier, self.bank = buttons, display, notifier, bank
        self.settings = settings
        self.stats = LoopStats()
        self._mapping_factory = mappings
        self._swap_lock = threading.Lock()
        self._pending_decoder: Decoder | None = None
        self._pending_voices: list[tuple[Anchor, ...] | None] = []
        self.voices = voices
        self.midi_in, self.on_received = midi_in, on_received
        self.program = ProgramInput(program_channel)
        self.midi_knobs, self.thru = midi_knobs, thru
        self.learner: Learner | None = None  # set by learn(): the next control turned is reported, not played
        self.learn_desk = None  # device.control.learn_service.LearnDesk: learn from the status page or a held button
        self._input_connects = 0
        self._cc_arrival: float | None = None
        self._urgent: list[bytes] = []
        self.link_up = True
        self._next_reopen = 0.0
        self._echo_link = True
        self._message = ""
        self._last_display = float("-inf")
        self._shown: DisplayState | None = None
        self._name_of: str | None = None  # the voice name _name encodes (encoded once per voice)
        self._name: tuple[int, ...] = ()
        self._at_base_array = np.zeros(0, dtype=np.int64)
        self.knob_masks: dict[int, np.ndarray] | None = None  # the voice's tuned knobs (a format 2 bank's)
        self._knob_decoded: dict[int, tuple[float, np.ndarray]] = {}  # dim -> (its value, the decode)
        self.healthy = True  # the decoder works (set per decode)
        self.model_state = None  # device.flashing.model_follow.ModelState when following a model store
        self.status = None  # device.flashing.status.StatusPublisher when status.json is configured
        self.sampler = PriorSampler(settings.random_seed)
        self._install(decoder)
        self.channels = self._new_channels()
        self.references: list[float | None] = [None] * len(self.mappings)
        self.cycler = AnchorCycler(voices or decoder.anchors)
        self.select(self.cycler.current())

    def _new_channels(self) -> list[KnobChannel]:
        """One smoothing chain per knob: the pots' settings, or the reader's own for its channel (a
        controller's CC needs no low-pass, device.control.midi_knobs) with the pots' pickup tolerance."""
        own = getattr(self.knobs, "smoothing_for", None)
        out = []
        for m in self.mappings:
            s = own(m.channel) if own is not None else None
            out.append(KnobChannel(self.settings.smoothing if s is None else
                                   replace(s, pickup_tolerance=self.settings.smoothing.pickup_tolerance)))
        return out

    # -- decoder -------------------------------------------------------------------------
    def _install(self, decoder: Decoder) -> None:
        mappings = self._mapping_factory(decoder)
        for m in mappings:
            if not 0 <= m.dim < decoder.latent_size:
                raise DxmacroError(f"knob {m.name!r} moves latent dimension {m.dim}, but the decoder has "
                                   f"{decoder.latent_size} (0..{decoder.latent_size - 1})")
        self.decoder = decoder
        self.mappings = mappings

    def swap_decoder(self, new: Decoder) -> None:
        """Thread-safe: the new decoder takes over between two ticks, never mid-tick."""
        with self._swap_lock:
            self._pending_decoder = new

    def set_voices(self, voices: tuple[Anchor, ...] | None) -> None:
        """Thread-safe: next / previous step through ``voices`` (None: the decoder's anchors) from
        the next tick on, starting at the first; they must carry latents of the current decoder."""
        with self._swap_lock:
            self._pending_voices.append(voices)

    def _apply_voices(self) -> None:
        if not self._pending_voices:
            return
        with self._swap_lock:
            voices, self._pending_voices = self._pending_voices[-1], []
        if voices and any(np.shape(a.latent) != (self.decoder.latent_size,) for a in voices):
            log.error("voices refused", extra={"event": "voices_refused",
                                               "reason": f"latents do not fit the decoder's {self.decoder.latent_size}"})
            return
        self.voices = voices or None
        self.cycler = AnchorCycler(self.voices or self.decoder.anchors)
        self.select(self.cycler.current())
        log.info("voices changed", extra={"event": "voices", "count": len(self.cycler.anchors),
                                          "source": "bank" if self.voices else "anchors"})

    def _apply_swap(self) -> None:
        if self._pending_decoder is None:
            return
        with self._swap_lock:
            new, self._pending_decoder = self._pending_decoder, None
        if new is None:
            return
        old_names = [m.name for m in self.mappings]
        try:
            self._install(new)
        except DxmacroError as exc:
            log.error("decoder swap refused", extra={"event": "swap_refused", "reason": str(exc)})
            return
        self.stats.swaps += 1
        self.voices = None  # a bank's latents mean something to one model only: back to the new one's anchors
        self.cycler = AnchorCycler(new.anchors)
        if len(self.mappings) != len(self.channels):
            self.channels = self._new_channels()
            self.references = [None] * len(self.mappings)
        # A new model gives latent codes a new meaning: start from its first anchor.
        self.select(self.cycler.current())
        self._message = "model swapped"
        log.info("decoder swapped", extra={"event": "decoder_swapped", "knobs": [m.name for m in self.mappings],
                                           "previous_knobs": old_names})

    # -- voices --------------------------------------------------------------------------
    def select(self, choice: VoiceChoice) -> None:
        """Switch to a voice: sent whole (or decoded), knobs armed for soft takeover. In relative
        mode the knobs' reference is the pickup point (or, with takeover "jump", where each knob
        is now), so selecting never changes the voice and the knobs then edit it."""
        self.base = np.asarray(choice.latent, dtype=np.float32).reshape(self.decoder.latent_size)
        self.latent = self.base.copy()
        self.voice_name = choice.name
        if choice.voice is not None:
            values = choice.voice.values[:LEARNABLE_COUNT]
        else:
            values = self._decode(self.base)
            if values is None:
                return
        self.base_values = np.asarray(values, dtype=np.int64)
        self.at_base = None
        self.knob_masks = choice.knob_masks if self.settings.knob_mode == "relative" else None
        self._knob_decoded = {}
        if self.settings.knob_mode == "relative":
            self.at_base = self.base_values if choice.voice is None else self._decode(self.base)
            if self.at_base is None:
                return
            self._at_base_array = np.asarray(self.at_base, dtype=np.int64)
        self._set_target(values)
        place = getattr(self.knobs, "place", None)
        for i, (m, ch) in enumerate(zip(self.mappings, self.channels)):
            pickup = m.to_position(float(self.base[m.dim]))
            if place is not None and place(m.channel, pickup):  # an encoder: no position of its own
                ch.place(pickup)
                self.references[i] = pickup
            elif self.settings.takeover == "jump":
                ch.takeover.release()
                self.references[i] = ch.position
            else:
                ch.takeover.arm(pickup, ch.position)
                self.references[i] = pickup
        if self.settings.takeover == "jump":
            self._knobs_changed()
        log.info("voice selected", extra={"event": "voice", "voice": choice.name,
                                          "tuned": [m.name for m in self.mappings if m.dim in (self.knob_masks or {})]})

    def _decode(self, z: np.ndarray, as_array: bool = False) -> tuple[int, ...] | np.ndarray | None:
        try:
            out = np.asarray(self.decoder.decode(z))
            if out.shape != (LEARNABLE_COUNT,):
                raise ValueError(f"decoder returned shape {out.shape}")
            self.stats.decodes += 1
            self.healthy = True
            return out if as_array else tuple(out.tolist())
        except Exception as exc:  # noqa: BLE001 - a failing model must not kill the loop; the watchdog decides
            self.stats.decode_errors += 1
            self.healthy = False
            log.error("decode failed", extra={"event": "decode_error", "reason": repr(exc)})
            return None

    def _set_target(self, params: tuple[int, ...] | np.ndarray) -> None:
        # Range check vectorised (Voice() checks value by value: too slow per tick); a knob's
        # values come as an array, so nothing is converted between its CC and its bytes but once.
        values = np.asarray(params)
        if values.shape != (LEARNABLE_COUNT,) or not np.all(values <= _HIGHS):
            self.stats.decode_errors += 1
            self.healthy = False
            log.error("decoder output out of range", extra={"event": "decode_error"})
            return
        if self._name_of != self.voice_name:
            self._name_of, self._name = self.voice_name, encode_name(self.voice_name)
        self.values = tuple(values.tolist()) + self._name
        self.profile.set_target(self.values)

    @property
    def voice(self) -> Voice:
        """The voice the knobs ask for now (what the synth gets once the budget allows)."""
        return Voice(self.values)

    def _knobs_changed(self) -> None:
        live = [ch.takeover.live for ch in self.channels]
        positions = [ch.position for ch in self.channels]
        if self.settings.knob_mode == "relative":
            z = self._relative_latent(positions, live)
        else:
            z = latent_from(self.base, self.mappings, positions, live)
        if np.array_equal(z, self.latent):
            return
        self.latent = z
        if self.at_base is not None and self.knob_masks is not None:
            values = self._tuned(z)
        else:
            values = self._decode(z, as_array=True)
            if values is not None and self.at_base is not None:
                values = relative_voice(self.base_values, self._at_base_array, values)
        if values is not None:
            self._set_target(values)

    def _tuned(self, z: np.ndarray) -> np.ndarray | None:
        """A tuned voice's knobs (relative mode): each moved knob decoded on its own, and only the
        parameters tuned for it on this voice passed on (dx7.relative.tuned_voice). A knob's decode
        is kept while its dimension stays put, so a tick that turns one knob costs one decode."""
        moves = []
        for dim in np.flatnonzero(z != self.base):
            value = float(z[dim])
            kept = self._knob_decoded.get(int(dim))
            if kept is None or kept[0] != value:
                one = self.base.copy()
                one[dim] = z[dim]
                out = self._decode(one, as_array=True)
                if out is None:
                    return None
                kept = self._knob_decoded[int(dim)] = (value, np.asarray(out, dtype=np.int64))
            moves.append((kept[1], self.knob_masks.get(int(dim))))
        return tuned_voice(self.base_values, self._at_base_array, moves)

    def _relative_latent(self, positions: list[float | None], live: list[bool]) -> np.ndarray:
        """The base latent, each live knob's dimension moved by the knob's travel from its
        reference (device.control.relative: a dead zone of the pickup tolerance around it)."""
        z = self.base.copy()
        width = self.settings.smoothing.pickup_tolerance
        for i, (m, pos, on) in enumerate(zip(self.mappings, positions, live)):
            if not on or pos is None:
                continue
            ref = self.references[i]
            if ref is None:  # "jump" before the knob's first reading: where it is now is the reference
                self.references[i] = ref = pos
            z[m.dim] = self.base[m.dim] + np.float32(m.to_latent(dead_zone(pos, ref, width)) - m.to_latent(ref))
        return z

    # -- buttons -------------------------------------------------------------------------
    def press(self, event: str) -> None:
        if event == "next":
            self.select(self.cycler.step(+1))
        elif event == "previous":
            self.select(self.cycler.step(-1))
        elif event == "random":
            self.select(self.sampler.draw(self.decoder))
        elif event == "store":
            if self.bank is None:
                self._message = "no bank file set"
                return
            try:
                n = self.bank.store(self.voice)
                self._message = f"stored #{n}"
                log.info("voice stored", extra={"event": "store", "voice": self.voice.name, "number": n})
            except DxmacroError as exc:
                self._message = "store failed"
                log.error("store failed", extra={"event": "store_failed", "reason": str(exc)})
        elif event == "panic":
            self._urgent.extend(panic_messages(self.profile.channel))
            self._message = "panic"
            log.info("panic", extra={"event": "panic"})
        else:
            log.warning("unknown button event", extra={"event": "button_unknown", "button": event})

    def midi_request(self, request: SelectProgram | NewVoices | None) -> None:
        """A Program Change or a bulk dump from the performer's MIDI input."""
        if isinstance(request, SelectProgram):
            if request.number >= len(self.cycler.anchors):
                self._message = f"no voice {request.number + 1}"
                log.info("program change out of range", extra={"event": "program", "number": request.number,
                                                               "voices": len(self.cycler.anchors)})
                return
            self.cycler.index = request.number
            self.select(self.cycler.current())
            self._message = f"program {request.number + 1}"
        elif isinstance(request, NewVoices):
            voices = with_latents(request.voices, self.decoder)
            self.voices = voices
            self.cycler = AnchorCycler(voices)
            self.select(self.cycler.current())
            self._message = f"received {len(voices)} voices"
            log.info("voices received", extra={"event": "voices_received", "count": len(voices)})
            if self.on_received is not None:
                try:
                    self.on_received(voices)
                except DxmacroError as exc:  # kept in memory all the same; said, not fatal
                    log.error("received voices not stored", extra={"event": "store_failed", "reason": str(exc)})

    # -- MIDI input -----------------------------------------------------------------------
    def _poll_input(self) -> None:
        """Everything that arrived on the performer's input since the last tick, routed in order."""
        timed = getattr(self.midi_in, "poll_timed", None)
        arrivals = timed() if timed is not None else [(None, d) for d in self.midi_in.poll()]  # type: ignore[union-attr]
        connects = getattr(self.midi_in, "connects", 0)
        if connects != self._input_connects or getattr(self.midi_in, "state", "connected") != "connected":
            self._input_connects = connects
            self._input_lost()
        for t, data in arrivals:
            self._route(t, data)

    def _input_lost(self) -> None:
        """The controller went away (or came back): nothing it struck may keep sounding."""
        if self.thru is not None and (self.thru.held or self.thru.sustain):
            self._urgent.extend(self.thru.release())
            log.info("controller gone: notes released", extra={"event": "notes_released"})

    def _route(self, t: float | None, data: bytes) -> None:
        """One message from the shared input: learning first, then the knobs, the thru, programs."""
        if self.learner is not None and self.learner.feed(data, self.clock.now()):
            return
        if self.midi_knobs is not None and self.midi_knobs.feed(data):
            if self._cc_arrival is None and t is not None:
                self._cc_arrival = t
            return
        if self.thru is not None and self.thru.push(data):
            return
        self.midi_request(self.program.feed(data))

    def learn(self, learner: Learner | None) -> None:
        """Report the next control turned to ``learner`` instead of playing it (None: stop learning)."""
        self.learner = learner

    def release_notes(self) -> None:
        """Before stopping: note-offs for what the thru left held, All Notes Off, sent now
        (budget or not); a port that is gone has nothing sounding through us anyway."""
        msgs = self.thru.release() if self.thru is not None else panic_messages(self.profile.channel)[1:]
        for data in msgs:
            try:
                self.port.send(data)
            except PortGone:
                return

    # -- output --------------------------------------------------------------------------
    def _send(self, data: bytes) -> bool:
        now = self.clock.now()
        if self.budget is not None and not self.budget.allows(now, len(data)):
            return False
        self.port.send(data)  # PortGone propagates to _pump
        if self.budget is not None:
            self.budget.spend(now, len(data))
        self.stats.messages += 1
        self.stats.bytes += len(data)
        return True

    def _send_voice(self, data: bytes) -> bool:
        """The profile's sends: the first one after a knob's CC arrived ends that CC's latency."""
        if not self._send(data):
            return False
        if self._cc_arrival is not None:
            if self.stats.record_ticks:
                self.stats.cc_latencies.append(time.monotonic() - self._cc_arrival)
            self._cc_arrival = None
        return True

    def _pump(self, now: float) -> None:
        if not self.link_up:
            if now < self._next_reopen:
                return
            try:
                self.port.reopen()
            except PortGone:
                self._next_reopen = now + self.settings.reopen_interval_s
                return
            self.link_up = True
            self.stats.reopened += 1
            self.profile.invalidate()  # whoever is there now gets the whole voice
            if self.echo is not None and self.echo_port is None:
                self.echo.invalidate()
            log.info("MIDI port back", extra={"event": "port_back"})
        try:
            while self._urgent:
                if not self._send(self._urgent[0]):
                    break
                self._urgent.pop(0)
            if self.thru is not None:
                self.thru.pump(self._send)  # what the performer plays goes before voice data
            self.profile.pump(self._send_voice)
            if self.echo is not None and self.echo_port is None:
                self.echo.pump(self._send)
        except PortGone as exc:
            self.link_up = False
            self.stats.port_gone += 1
            self._next_reopen = now + self.settings.reopen_interval_s
            log.warning("MIDI port gone", extra={"event": "port_gone", "reason": str(exc)})

    def _pump_echo(self) -> None:
        if self.echo is None or self.echo_port is None:
            return
        port = self.echo_port

        def send(data: bytes) -> bool:
            port.send(data)
            return True

        try:
            if not self._echo_link:
                port.reopen()
                self._echo_link = True
                self.echo.invalidate()
            self.echo.pump(send)
        except PortGone:
            self._echo_link = False

    # -- the tick ------------------------------------------------------------------------
    def tick(self) -> None:
        start = self.clock.now()
        self.stats.ticks += 1
        if self.stats.record_ticks:
            self.stats.tick_starts.append(start)
        self._apply_swap()
        self._apply_voices()
        if self.buttons is not None:
            for event in self.buttons.poll():
                if self.learn_desk is None or not self.learn_desk.take_press(self, event):
                    self.press(event)
        if self.midi_in is not None:
            self._poll_input()
        try:
            raw = self.knobs.read()
        except OSError:
            raw = [None] * len(self.mappings)
        now = self.clock.now()
        changed = False
        swept = getattr(self.knobs, "swept", None)
        for m, ch in zip(self.mappings, self.channels):
            r = raw[m.channel] if m.channel < len(raw) else None
            if r is None:
                self.stats.read_failures += 1
            elif swept is not None and not ch.takeover.live and (span := swept(m.channel)) is not None \
                    and span[0] - ch.takeover.tolerance <= ch.takeover.target <= span[1] + ch.takeover.tolerance:
                ch.update(ch.takeover.target, now)  # it went through the pickup point between two reads
            changed |= ch.update(r, now)
        if changed:
            self._knobs_changed()
        if self.echo is not None:
            self.echo.set_positions([ch.position for ch in self.channels])
        self._pump(now)
        if not self.profile.pending:  # a control that changed nothing sends nothing: no latency to count
            self._cc_arrival = None
        self._pump_echo()
        if self.learn_desk is not None:  # after the bytes went out: learning costs a knob nothing
            self.learn_desk.tick(self, now)
        self._update_display(now)
        if self.status is not None:
            self.status.tick(self)
        if self.notifier is not None:
            self.notifier.watchdog(now, self.is_healthy())

    def is_healthy(self) -> bool:
        """What the systemd watchdog and status.json's ``healthy`` both say: the decoder works and
        the model the store names could be run."""
        return self.healthy and (self.model_state is None or self.model_state.ok)

    def display_state(self) -> DisplayState:
        tuned = self.knob_masks or {}
        knobs = tuple(KnobView(m.name, ch.position, ch.takeover.direction(ch.position), ch.takeover.target,
                               m.dim in tuned)
                      for m, ch in zip(self.mappings, self.channels))
        return DisplayState(self.voice_name, knobs, self.link_up, self.profile.name, self._message)

    def _update_display(self, now: float) -> None:
        if self.display is None or now - self._last_display < self.settings.display_period_s:
            return
        state = self.display_state()
        if state != self._shown:
            self.display.show(state)
            self._shown = state
        self._last_display = now

    def period(self) -> float:
        rate = self.settings.rate_hz
        return max(1.0 / rate if rate > 0 else 0.0, 0.0)

    def run(self, *, until: float | None = None, stop: threading.Event | None = None) -> None:
        """Tick at the fixed rate (a deadline schedule; a late tick does not pile up)
        until the clock reaches ``until`` or ``stop`` is set."""
        period = self.period()
        deadline = self.clock.now()
        # Knobs that cost nothing to read (a controller's) and an input that can be waited on: wait
        # for a message instead of sleeping, and tick as soon as one comes (the schedule stays).
        wait = getattr(self.midi_in, "wait", None) if self.knobs.scan_period_s == 0 else None
        while (stop is None or not stop.is_set()) and (until is None or self.clock.now() < until):
            if wait is not None and wait(deadline - self.clock.now()):
                self.tick()
                continue
            self.clock.sleep_until(deadline)
            self.tick()
            deadline += period
            now = self.clock.now()
            if now > deadline + period:  # fell behind (ADC slower than rate_hz): restart the schedule
                if period > self.knobs.scan_period_s:
                    self.stats.overruns += 1
                deadline = now
