"""Preparing a TFDS dataset that is not in its data_dir yet, or saying in seconds why it cannot be.

TFDS itself retries an unreachable download host for minutes; here a missing archive, `dataset.download=false` or
an unreachable host is one line that says how to fix it (prepare it elsewhere, a manual archive, or `dataset=shapes`).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import tensorflow_datasets as tfds
from omegaconf import DictConfig

from alexnet_sweep.errors import UserInputError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


def prepare(dataset: DictConfig, builder: tfds.core.DatasetBuilder) -> None:
    """Makes `builder` prepared in its data_dir, or says in one line what was tried and how to fix it."""
    where = builder.data_dir
    urls = list(builder.url_infos or {})
    fixes = (
        f'prepare it where there is internet with python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{dataset.name}', data_dir='DIR').download_and_prepare()\" and pass dataset.data_dir=DIR, "
        f"or put its downloaded archive in {_manual_dir(builder)}, "
        "or use dataset=shapes (offline)"
    )
    if urls and not _has_manual_archive(builder, urls):
        if not dataset.download:
            raise UserInputError(
                f"dataset.name={dataset.name!r} is not prepared in {where} and dataset.download=false; {fixes}"
            )
        unreachable = [] if _behind_proxy() else unreachable_hosts(urls)
        if unreachable:
            raise UserInputError(
                f"dataset.name={dataset.name!r} is not prepared in {where} and cannot be downloaded "
                f"({', '.join(unreachable)} unreachable); {fixes}"
            )
    log.info("Preparing TFDS dataset %s in %s", dataset.name, where)
    try:
        builder.download_and_prepare()
    except OSError as err:
        raise UserInputError(f"dataset.name={dataset.name!r}: download failed ({err}); {fixes}") from None


def _basename(url: str) -> str:
    return Path(urlparse(url).path).name


def _manual_dir(builder: tfds.core.DatasetBuilder) -> Path:
    data_dir_root = str(builder.data_dir)[: -len(builder.info.full_name)]
    return Path(data_dir_root) / "downloads" / "manual"  # where TFDS looks for manually downloaded archives


def _has_manual_archive(builder: tfds.core.DatasetBuilder, urls: list[str]) -> bool:
    manual = _manual_dir(builder)
    return any((manual / _basename(url)).exists() for url in urls)


def unreachable_hosts(urls: list[str]) -> list[str]:
    """Returns the download hosts that do not accept a connection within a few seconds.

    TFDS itself retries an unreachable host for minutes; this answers in seconds.
    """
    default_ports = {"http": 80, "https": 443}
    parsed = [urlparse(url) for url in urls]
    hosts = sorted({(p.hostname, p.port or default_ports.get(p.scheme, 443)) for p in parsed if p.hostname})
    unreachable = []
    for host, port in hosts:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
        except OSError:
            unreachable.append(host)
    return unreachable


def _behind_proxy() -> bool:
    """True if downloads go through a proxy, where a direct probe says nothing (TFDS's requests uses it)."""
    return any(
        os.environ.get(name)
        for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
    )
