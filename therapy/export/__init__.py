"""Exports of a recorded session for researchers and clinicians: XDF, BIDS, tidy CSV and an HTML report.

Everything starts from :class:`~therapy.export.recorded.SessionData`, read from
the session store (and the session's own ``session.xdf`` for ECG), so every
format says the same thing with the same timestamps.
"""
