"""Slider to pixels in a real browser: `input` event on a slider -> the new image in the DOM.

    python bench/slider_latency.py [--moves 200] [--chromium /usr/bin/chromium]

Starts `python app.py` and a do-nothing Gradio "echo" app (same slider, same image component, same
event and launch settings; its handler returns a precomputed PNG) on localhost, opens each in headless
Chromium, and moves a principal-direction slider ``--moves`` times: first on the model the page opens
with, then on every shipped checkpoint after switching to it in the model menu. Each move sets
the slider's value and dispatches the `input` event the browser fires during a drag; the time is taken
in the page (performance.now) until a MutationObserver sees the image's src change. Moves are
sequential (the next starts when the image arrived), so each number is one full round trip.
Targets: p50 within 1.3x of the echo floor; p95 <= 100 ms on this machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import machine, machine_line, percentile, write_results  # noqa: E402
from bench.startup_memory import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

ECHO_APP = textwrap.dedent('''
    import base64, io, sys
    import gradio as gr
    import numpy as np
    from PIL import Image
    from explorer.ui.explore import VIEW_CSS, VIEW_TEMPLATE

    def uri(i):
        a = np.zeros((28, 28), np.uint8); a[i % 28, :] = 255
        buf = io.BytesIO(); Image.fromarray(a).save(buf, format="PNG", compress_level=1)
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    URIS = [uri(i) for i in range(28)]

    def echo(v):
        return URIS[int(abs(v) * 1000) % len(URIS)]

    with gr.Blocks() as demo:
        s = gr.Slider(-3, 3, value=0, step=0.01, elem_id="pc-0")
        view = gr.HTML(URIS[0], html_template=VIEW_TEMPLATE, css_template=VIEW_CSS, elem_id="explore-view")
        s.input(echo, s, view, trigger_mode="always_last", show_progress="hidden", queue=False)
    demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), run_history=False)  # as the app
''')

# Runs inside the page: `moves` sequential slider moves, each timed until the image's src changes.
MEASURE_JS = """
async ({sel, moves}) => {
  const input = document.querySelector(sel + ' input[type=range]');
  const lo = parseFloat(input.min), hi = parseFloat(input.max);
  const host = document.querySelector('#explore-view');
  const src = () => (host.querySelector('img') || {}).src;
  const times = [];
  let misses = 0;
  for (let i = 0; i < moves; i++) {
    const before = src();
    const f = 0.1 + 0.8 * (((i * 37) % 97) / 97);      // spread over the range, never the same twice in a row
    const t0 = performance.now();
    input.value = String(lo + (hi - lo) * f);
    input.dispatchEvent(new Event('input', {bubbles: true}));
    const ok = await new Promise(resolve => {
      const obs = new MutationObserver(() => { if (src() !== before) { obs.disconnect(); resolve(true); } });
      obs.observe(host, {subtree: true, attributes: true, childList: true, characterData: true});
      setTimeout(() => { obs.disconnect(); resolve(false); }, 5000);
    });
    if (ok) times.push(performance.now() - t0); else misses++;
  }
  return {times, misses};
}
"""


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def _start(args: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, *args, str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    _wait_http(url, proc)
    return proc, url


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _measure(page, sel: str, moves: int) -> dict:
    page.evaluate(MEASURE_JS, {"sel": sel, "moves": 10})  # warm-up: JIT, first decode, caches
    res = page.evaluate(MEASURE_JS, {"sel": sel, "moves": moves})
    t = res["times"]
    return {"n": len(t), "misses": res["misses"], "p50_ms": percentile(t, 0.5), "p95_ms": percentile(t, 0.95),
            "mean_ms": sum(t) / max(1, len(t))}


def _switch(page, name: str) -> None:
    page.click("#run-select input")
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_function(f"() => document.querySelector('#explore-caption').innerText.includes('{name}')")
    page.wait_for_selector("#pc-0 input[type=range]", state="visible")
    page.wait_for_timeout(500)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from explorer.store import list_runs

    runs = [r.name for r in list_runs(ROOT / "checkpoints") if r.explorable]
    m = machine()
    print(f"machine: {machine_line(m)}")
    echo_file = ROOT / "bench" / "out" / "echo_app.py"
    echo_file.parent.mkdir(parents=True, exist_ok=True)
    echo_file.write_text(ECHO_APP)
    rows = []
    echo_proc, echo_url = _start([str(echo_file)])
    app_proc, app_url = _start(["app.py", "--port"])
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(echo_url)
            page.wait_for_selector("#explore-view img")
            echo = _measure(page, "#pc-0", args.moves)
            rows.append({"target": "echo (do-nothing handler)", **echo})
            print(f"echo floor: p50 {echo['p50_ms']:.1f} ms, p95 {echo['p95_ms']:.1f} ms over {echo['n']} moves")
            page.goto(app_url)
            page.wait_for_selector("#pc-0 input[type=range]", state="visible")
            first = page.evaluate("() => document.querySelector('#run-select input').value")
            for name, switch in [(first, False), *[(n, True) for n in runs]]:
                if switch:
                    _switch(page, name)
                r = _measure(page, "#pc-0", args.moves)
                r["ratio_p50_vs_echo"] = r["p50_ms"] / echo["p50_ms"]
                name = f"{name} ({'after switching to it' if switch else 'as the page opens'})"
                rows.append({"target": name, **r})
                print(f"{name}: p50 {r['p50_ms']:.1f} ms ({r['ratio_p50_vs_echo']:.2f}x echo), "
                      f"p95 {r['p95_ms']:.1f} ms over {r['n']} moves ({r['misses']} without a new image)")
            browser.close()
    finally:
        _stop(app_proc)
        _stop(echo_proc)
    md = [f"# Slider to pixels in the browser\n\nMachine: {machine_line(m)}; headless Chromium; "
          f"{args.moves} sequential moves each.\n",
          "| target | p50 (ms) | p95 (ms) | p50 / echo p50 | moves |", "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio_p50_vs_echo']:.2f}" if "ratio_p50_vs_echo" in r else "1 (floor)"
        md.append(f"| {r['target']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {ratio} | {r['n']} |")
    app_rows = [r for r in rows if "ratio_p50_vs_echo" in r]
    worst_ratio = max(r["ratio_p50_vs_echo"] for r in app_rows)
    worst_p95 = max(r["p95_ms"] for r in app_rows)
    md.append(f"\nTargets: p50 ≤ 1.3× echo — worst {worst_ratio:.2f}× ({'met' if worst_ratio <= 1.3 else 'MISSED'}); "
              f"p95 ≤ 100 ms — worst {worst_p95:.1f} ms ({'met' if worst_p95 <= 100 else 'MISSED'}).")
    payload = {"machine": m, "rows": rows}
    write_results("slider", payload, "\n".join(md))
    return payload


if __name__ == "__main__":
    main()
