"""What a video file says about itself, read before any model loads: size, rate and
frame count; how many frames its container declares (a truncated or damaged file
holds fewer, and the stream fails where they run out, README "Bad input"); whether
its timestamps keep one rate (frame dropping assumes they do); and a fingerprint
of its first frames, which `compare` uses to tell two videos apart."""

from __future__ import annotations

import hashlib
import itertools
import re
import statistics
from dataclasses import dataclass
from fractions import Fraction

from rifebench.data.video_io import MIN_FRAMES, VideoError, VideoInfo, open_video, video_stream

FINGERPRINT_FRAMES = 3
# An interval within this share of a whole number of median intervals keeps the rate
# (timestamps are rounded to the container's tick: 1 ms in Matroska).
RATE_TOLERANCE = 0.1
# Packets a decoder may hold back (B-frames): a timestamp at or below all of the last 16 in
# decode order starts a new timeline (two files spliced), which is no change of rate.
REORDER_WINDOW = 16
_HMS = re.compile(r"(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True)
class Timing:
    """The frames' presentation timestamps, sorted, as intervals."""

    interval_s: float | None  # the median interval
    timelines: int  # runs of timestamps that restart (1 but for spliced files)
    variable: bool  # an interval that is no whole multiple of the median
    missing: int  # frames missing between timestamps: an interval of k medians misses k - 1
    range_ms: tuple[float, float] | None  # the shortest and longest interval


def timelines(times: list[float]) -> list[list[float]]:
    """Timestamps in decode order -> each timeline's, in presentation order."""
    out: list[list[float]] = [[]]
    for t in times:
        if out[-1] and t <= min(out[-1][-REORDER_WINDOW:]):
            out.append([])
        out[-1].append(t)
    return [sorted(run) for run in out]


def timing(times: list[float], tick_s: float, nominal_s: float | None = None) -> Timing:
    """Constant rate, holes and variable rate, from the timestamps alone (in decode
    order). `nominal_s`, the interval the stream's rate gives, replaces a median within
    a tick of it (a median of timestamps rounded to 1 ms is 42 ms at 24 fps)."""
    runs = timelines(times)
    steps = [b - a for run in runs for a, b in itertools.pairwise(run)]
    if not steps:
        return Timing(None, len(runs), False, 0, None)
    spread = (round(min(steps) * 1000, 3), round(max(steps) * 1000, 3))
    median = statistics.median(steps)
    if median <= 0:  # most frames share a timestamp: no rate at all
        return Timing(None, len(runs), True, 0, spread)
    if nominal_s and abs(median - nominal_s) <= tick_s:
        median = nominal_s
    variable, missing = False, 0
    for step in steps:
        k = round(step / median)
        if k < 1 or abs(step - k * median) > max(k * tick_s, RATE_TOLERANCE * median):
            variable = True
        else:
            missing += k - 1
    return Timing(median, len(runs), variable, 0 if variable else missing, spread)


def _seconds(text: str) -> float | None:
    m = _HMS.match(text.strip())
    return int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3]) if m else None


def _tag(stream, name: str) -> str | None:
    """A stream tag by name, whatever its case or language suffix (mkvmerge writes DURATION-eng)."""
    for key, value in (stream.metadata or {}).items():
        if key.upper() == name or key.upper().startswith(name + "-"):
            return str(value)
    return None


def _declared_duration(container, s) -> tuple[float | None, str]:
    if s.duration and s.time_base:
        return float(s.duration * s.time_base), "its stream duration"
    if (text := _tag(s, "DURATION")) and (seconds := _seconds(text)) is not None:
        return seconds, "its DURATION tag"
    if container.duration and len(container.streams) == 1:  # another stream's length would count too
        return container.duration / 1_000_000, "its duration"
    return None, ""


def declared(container, s, found: int, discarded: int, end_s: float | None, t: Timing) -> tuple[int | None, str]:
    """The frames the container declares, and where it says so: its frame count
    (MP4's sample table, AVI's header, mkvmerge's NUMBER_OF_FRAMES tag) or, from its
    duration, the frames found plus the holes between them and after the last."""
    if s.frames:
        return s.frames - discarded, "its frame count"
    count = _tag(s, "NUMBER_OF_FRAMES")
    if count is not None and count.strip().isdigit():
        return int(count), "its NUMBER_OF_FRAMES tag"
    duration, where = _declared_duration(container, s)
    if duration is None or t.interval_s is None or t.variable or t.timelines != 1 or end_s is None:
        return None, ""
    after = max(0, round((duration - end_s) / t.interval_s))
    return found + t.missing + after, f"{where} ({duration:.3f} s)"


def _rate(s) -> Fraction:
    rate = s.average_rate or s.guessed_rate or s.base_rate
    return Fraction(rate) if rate else Fraction(25)  # FFmpeg's own default when a file states none


class _Scan:
    """One pass over the packets: counted, their timestamps kept, the first frames
    decoded (fingerprinted, and any the decoder flags damaged noted)."""

    def __init__(self, decode: int):
        self.decode = decode
        self.packets = self.discarded = self.decoded = 0
        self.damaged: int | None = None  # the first decoded frame the decoder found damaged
        self.times: list[float] = []
        self.digest = hashlib.sha256()

    def packet(self, packet, s) -> None:
        if packet.size and packet.is_discard:  # trimmed by an edit list, never shown
            self.discarded += 1
        elif packet.size:
            self.packets += 1
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is not None and packet.time_base:
                self.times.append(float(ts * packet.time_base))
        if self.decoded < self.decode:  # demux ends with an empty packet: it flushes the decoder
            for frame in s.codec_context.decode(packet):
                if frame.is_corrupt and self.damaged is None:  # errors concealed: not the frame the file holds
                    self.damaged = self.decoded
                if self.decoded < FINGERPRINT_FRAMES:
                    arr = frame.to_ndarray(format="bgr24")
                    self.digest.update(f"{arr.shape}".encode() + arr.tobytes())
                self.decoded += 1


def probe(path: str, need: int = MIN_FRAMES) -> VideoInfo:
    """Open the file, count its frames (packets, without decoding), read their
    timestamps and decode the first `need`: a file that is not a video, an unsupported
    codec, a video shorter than `need` frames or one of them damaged fails here,
    before any model is loaded."""
    import av

    with open_video(path) as container:
        s = video_stream(container, path)
        scan = _Scan(max(need, FINGERPRINT_FRAMES))
        try:
            for packet in container.demux(s):
                scan.packet(packet, s)
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path}: cannot decode frame {scan.decoded} ({exc})") from None
        packets, times = scan.packets, scan.times
        tick_s, nominal_s = float(s.time_base or 0), 1 / float(_rate(s))
        t = timing(times, tick_s, nominal_s) if len(times) == packets else Timing(None, 0, False, 0, None)
        end_s = max(times) + t.interval_s if times and t.interval_s else None
        count, where = declared(container, s, packets, scan.discarded, end_s, t)
        cc = s.codec_context
        info = VideoInfo(
            path,
            container.format.name,
            cc.name,
            cc.width,
            cc.height,
            str(_rate(s)),
            float(_rate(s)),
            packets,
            cc.pix_fmt,
            declared_frames=count,
            declared_from=where or None,
            frame_interval_s=t.interval_s,
            variable_rate=t.variable,
            interval_range_ms=t.range_ms,
            fingerprint=scan.digest.hexdigest()[:16] if scan.decoded else None,
        )
    if scan.decoded < need or packets < need:
        have = min(scan.decoded, packets)
        short = f" of the {count} {where} declares (truncated or damaged)" if count and count > have else ""
        raise VideoError(f"{path} has {have} frame(s){short}", f"a video of at least {need} frames")
    if scan.damaged is not None and scan.damaged < need:
        raise VideoError(f"{path}: cannot decode frame {scan.damaged} (the decoder found it damaged)")
    return info
