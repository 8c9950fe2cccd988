"""report.html is self-contained and renders its plots in a real browser (headless Chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
# appended to a copy of the report: after load, list every plot with its decoded size
PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img.plot'));
  var out = document.createElement('pre'); out.id = 'render-check';
  out.textContent = JSON.stringify(imgs.map(function (i) {
    return {id: i.id, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}; }));
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from test_eval_runner import JitteredLabels, build_tiny_set

    from marauder.evaluate import evaluate_model

    root = tmp_path_factory.mktemp("htmlset")
    yaml_path, labels = build_tiny_set(root)
    out = root / "report"
    evaluate_model(JitteredLabels(labels), yaml_path, critical_species=["lionfish", "abalone"],
                   bootstrap=50, operating_conf=0.5, output_dir=out)
    return out


def render(html_path, tmp_path) -> list[dict]:
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text().replace("</body>", PROBE + "</body>"))
    proc = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="render-check">(.*?)</pre>', proc.stdout)
    assert found, f"chromium printed no result (rc {proc.returncode}): {proc.stderr[-1500:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_report_renders_every_plot_in_chromium(report_dir, tmp_path):
    html = (report_dir / "report.html").read_text()
    assert not re.search(r"(src|href)=['\"](?!data:)", html)  # nothing fetched from outside the file
    plots = render(report_dir / "report.html", tmp_path)
    assert {p["id"] for p in plots} == {"plot-pr_curves", "plot-confusion_matrix", "plot-reliability",
                                       "plot-worst_false_negatives", "plot-worst_false_positives"}
    for p in plots:
        assert p["complete"] and p["w"] > 100 and p["h"] > 100, p


def test_render_check_catches_a_broken_plot(report_dir, tmp_path):
    """Control: corrupting one embedded PNG makes the same check report it as not rendered."""
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r"(id='plot-reliability' alt='[^']*' src='data:image/png;base64,)[^']{40}",
                             r"\1" + "A" * 40, (report_dir / "report.html").read_text()))
    plots = {p["id"]: p for p in render(broken, tmp_path)}
    assert plots["plot-reliability"]["w"] == 0
    assert plots["plot-pr_curves"]["w"] > 0
