"""The edge's media pipeline: fetch into a local cache, find each track's cue points, measure loudness.

One job per module:

- ``ffmpeg``   the only place ffmpeg/ffprobe run (argv lists, own process group, stopped on timeout/cancel)
- ``decoder``  the only place audio is decoded in-process (PyAV): windows of mono samples, in a worker thread
- ``energy``   a window's 10 ms RMS energy and its silences (libavfilter's own filters, in this process; no I/O)
- ``ffparse``  pure parsers of what ffmpeg prints
- ``analysis`` pure cue rules (silence touching start/end, thresholds, cue-in guard)
- ``analyzer`` ``analyze(path_or_url, config) -> TrackAnalysis``: head/tail windows, or a full loudness pass
               (``analyze_blocking``: the same in the calling thread, for the one-shot CLI)
- ``fetcher``  the only place yt-dlp is used (``YtDlpFetcher``), and ``FakeFetcher`` under the same contract
- ``eviction`` pure choice of what to evict
- ``cache``    ``MediaCache``: SQLite index, eviction, prefetch, analysis and overrides, ``playable(key)``
- ``synth``    generated tracks with known silences (tests, benchmarks, the demo)
- ``cli``      ``djamms-edge analyze``
"""

