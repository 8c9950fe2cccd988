"""FathomNet acquisition through the official client: concepts, retries, resumable downloads."""

from .downloader import DownloadOptions, DownloadResult, FathomNetUnavailable, run_download

__all__ = ["DownloadOptions", "DownloadResult", "FathomNetUnavailable", "run_download"]
