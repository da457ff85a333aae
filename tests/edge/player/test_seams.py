"""read_wav on WAVs ffmpeg writes in each PCM/float sample format (mpv's captures are checked in
test_mpv_player.py): the same tone reads back the same whatever the format, or a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from djamms_edge.edge.media import ffmpeg
from djamms_edge.edge.player.seams import read_wav, tones

# ffmpeg writes WAVE_FORMAT_EXTENSIBLE headers for more than 16 bits or 2 channels: both header kinds run.
CODECS = ["pcm_u8", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le"]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("channels", [1, 6])
async def test_each_sample_format_reads_back(tmp_path: Path, codec: str, channels: int) -> None:
    wav = tmp_path / "tone.wav"
    tone = "0.5*sin(2*PI*440*t)*between(t\\,0.1\\,0.4)"
    source = f"aevalsrc=exprs='{'|'.join([tone] * channels)}':s=48000:d=0.5"
    await ffmpeg.render(wav, ["-c:a", codec], lavfi=[source], limit_seconds=60)
    capture = read_wav(wav)
    assert capture.rate == 48000
    assert capture.duration == pytest.approx(0.5, abs=0.001)
    assert [(round(t.hz, -1), round(t.length, 2)) for t in tones(capture)] == [(440, 0.3)]
    assert max(abs(x) for x in capture.samples) == pytest.approx(0.5, rel=0.03)  # scaled to full scale


def test_an_unknown_sample_format_is_a_clear_error(tmp_path: Path) -> None:
    header = b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + (2).to_bytes(2, "little")  # tag 2: ADPCM
    header += (1).to_bytes(2, "little") + (8000).to_bytes(4, "little") + bytes(6) + (4).to_bytes(2, "little")
    wav = tmp_path / "adpcm.wav"
    wav.write_bytes(header + b"data\x04\x00\x00\x00" + bytes(4))
    with pytest.raises(ValueError, match="unsupported WAV sample format 2/4 bits"):
        read_wav(wav)
