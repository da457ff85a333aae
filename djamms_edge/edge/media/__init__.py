"""The edge's media pipeline: fetch into a local cache, find each track's cue points, measure loudness.

One job per module. The daemon itself imports neither PyAV (``decoder``, ``energy``, ``analyzer``) nor yt-dlp
(``ytdlp``): it runs them in media worker processes (``worker``), one per job.


- ``ffmpeg``   the only place ffmpeg/ffprobe run (argv lists, own process group, stopped on timeout/cancel)
- ``decoder``  the only place audio is decoded in-process (PyAV): windows of mono samples, in a worker thread
- ``energy``   a window's 10 ms RMS energy and its silences (libavfilter's own filters, in this process; no I/O)
- ``ffparse``  pure parsers of what ffmpeg prints
- ``analysis`` pure cue rules (silence touching start/end, thresholds, cue-in guard), the ``TrackAnalysis`` record
- ``analyzer`` ``analyze(path_or_url, config) -> TrackAnalysis``: head/tail windows, or a full loudness pass
               (``analyze_blocking``: the same in the calling thread, for the one-shot CLI)
- ``fetcher``  ``YtDlpFetcher`` (retry rules; each attempt in a worker) and ``FakeFetcher`` under the same contract
- ``ytdlp``    the only importer of yt-dlp: one download attempt, the doctor's view of it (run in a worker)
- ``worker``   one child process per job: JSON request in, JSON answer out, killed at its limit or when cancelled;
               ``worker.analyze`` is ``analyzer.analyze`` through a worker
- ``eviction`` pure choice of what to evict
- ``cache``    ``MediaCache``: SQLite index, eviction, prefetch, analysis and overrides, ``playable(key)``
- ``synth``    generated tracks with known silences (tests, benchmarks, the demo)
- ``cli``      ``djamms-edge analyze``
"""

