"""The DX7 language shared by every dxmacro stage: parameters, voices, sysex.

Pure Python + numpy, imports nothing else of ours, so it runs on the Raspberry Pi.
"""

from dx7.errors import DX7Error
from dx7.files import LoadedVoice, VoiceFile, read_voice_file
from dx7.params import LEARNABLE_COUNT, PARAM_COUNT, PARAMS, Kind, Param, param
from dx7.sanitize import Fix, sanitize
from dx7.sysex import BulkDump, DumpRequest, ParameterChange, SingleVoice, parse_message, parse_stream
from dx7.voice import Voice

__all__ = [
    "DX7Error", "LoadedVoice", "VoiceFile", "read_voice_file", "LEARNABLE_COUNT", "PARAM_COUNT", "PARAMS", "Kind",
    "Param", "param", "Fix", "sanitize", "BulkDump", "DumpRequest", "ParameterChange", "SingleVoice",
    "parse_message", "parse_stream", "Voice",
]
