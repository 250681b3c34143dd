"""Builders for the submitter's output deliveries, shared by the transfer tests."""

from __future__ import annotations

import io


def _inline_deliveries(tmp_path, err):
    from submitter.delivery import Deliveries
    from submitter.files import OutputWriter
    from submitter.report import Reporter
    from submitter.traffic import FileTraffic
    traffic = FileTraffic(str(tmp_path))
    return traffic, Deliveries(traffic, Reporter(out=io.BytesIO(), err=err), OutputWriter(str(tmp_path)), 1, None)
