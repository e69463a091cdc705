"""Map tab: PCA / t-SNE scatter of a run's latents; clicking it sends a latent to Explore.

``gr.Plot`` has no click event, so a small bridge does it: a hidden ``gr.HTML`` whose ``js_on_load``
finds the plotly graph inside ``#map-plot`` (re-attaching whenever the plot is redrawn), listens to
``plotly_click`` for points and to pointer up/down for clicks on empty space, writes what was clicked
into its own value as JSON and triggers its ``click`` event, which runs ``map_click`` in Python.
The same endpoint takes that JSON over the API (``/map_click``).
"""

from __future__ import annotations

import json

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from explorer import core, maps
from explorer.store import Run, Store
from explorer.ui.common import Ctx, bind, current, with_z

BRIDGE_JS = r"""
const attach = () => {
  const gd = document.querySelector('#map-plot .js-plotly-plot');
  if (!gd || !gd.on) return;
  const send = (msg) => { props.value = JSON.stringify({...msg, t: Date.now()}); trigger('click'); };
  // Plotly's event emitter (gd._ev) is replaced when the figure is re-created: bind to each new one once.
  if (gd.__lxEv !== gd._ev) {
    gd.__lxEv = gd._ev;
    gd.on('plotly_click', (ev) => {
      const p = ev && ev.points && ev.points[0];
      if (!p) return;
      gd.__lxLastPoint = Date.now();
      const row = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
      send({kind: 'point', row: Number(row), x: p.x, y: p.y});
    });
  }
  if (gd.__lxPointer) return;
  gd.__lxPointer = true;
  // Clicks on empty space: plotly puts a drag cover over the page on pointerdown, so the pointerup is
  // caught on window. A click that plotly reports as a point click wins.
  let down = null;
  gd.addEventListener('pointerdown', (e) => { down = [e.clientX, e.clientY, e.target]; }, true);
  window.addEventListener('pointerup', (e) => {
    const d = down; down = null;
    if (!d || Math.abs(e.clientX - d[0]) + Math.abs(e.clientY - d[1]) > 4) return;
    if (!d[2].closest || !d[2].closest('.nsewdrag, .draglayer, .plot')) return;
    setTimeout(() => {
      if (Date.now() - (gd.__lxLastPoint || 0) < 500) return;
      const L = gd._fullLayout, xa = L && L.xaxis, ya = L && L.yaxis;
      if (!xa || !ya) return;
      const r = gd.getBoundingClientRect();
      const px = e.clientX - r.left - xa._offset, py = e.clientY - r.top - ya._offset;
      if (px < 0 || py < 0 || px > xa._length || py > ya._length) return;
      send({kind: 'empty', x: xa.p2d(px), y: ya.p2d(py)});
    }, 200);
  }, true);
};
attach();
// Bind as soon as a (re)drawn plot appears, and poll as a fallback (the plot may mount later).
new MutationObserver(attach).observe(document.body, {childList: true, subtree: true});
setInterval(attach, 400);
"""

PICKED_TEMPLATE = '{{#if value}}<img class="lx-picked" src="{{value}}" alt="the decoded latent of the clicked spot">{{/if}}'
PICKED_CSS = "img.lx-picked { width: 112px; height: 112px; image-rendering: pixelated; border-radius: 4px; }"
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#17becf", "#bcbd22"]


def _figure(store: Store, run: Run, m: maps.MapData, state: dict | None) -> go.Figure:
    lab, names, source = core.labels(store, run)
    lab = lab[: m.n]
    rows = np.arange(m.n)
    fig = go.Figure()
    what = "encoding of dataset image" if run.has_encoder else "prior draw"
    split = run.checkpoint.latents.get("split")
    groups = sorted(set(lab.tolist()))
    for g in groups:
        sel = rows[lab == g]
        if g < 0:
            name = "unlabelled"
        else:
            name = names[g] if g < len(names) else str(g)
        if source == "classifier" and g >= 0:
            name = f"looks like {name}"
        hover = [f"{what} #{r}" + (f"<br>{'label' if source == 'dataset' else 'classified as'} {names[g] if g < len(names) else g}"
                                   if g >= 0 else "")
                 + ("" if split is None else ("<br>held-out" if split[r] == 0 else "<br>training set"))
                 + "<br><i>click: open in Explore</i>" for r in sel]
        fig.add_trace(go.Scatter(
            x=m.xy[sel, 0], y=m.xy[sel, 1], mode="markers", name=name, customdata=sel, hovertext=hover,
            hoverinfo="text", marker=dict(size=5 if m.n <= 3000 else 4, opacity=0.75,
                                          color=PALETTE[g % len(PALETTE)] if g >= 0 else "#8a8a8a"),
        ))
    pins = []
    if state and state.get("run") == run.name and state.get("z"):
        pins.append(("current latent", -1, state["z"], "star", "#111111"))
    up = (state or {}).get("upload")
    if up and up.get("run") == run.name:
        pins.append(("uploaded image", -2, up["z"], "diamond", "#d62728"))
    for name, code, z, symbol, color in pins:
        x, y = maps.place(run, m, np.asarray(z, np.float32))
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=name, customdata=[code],
                                 hovertext=[name], hoverinfo="text",
                                 marker=dict(size=16, symbol=symbol, color=color, line=dict(width=2, color="white"))))
    axis = "PC{} (σ)" if m.method == "PCA" else "t-SNE {}"
    fig.update_layout(
        height=560, margin=dict(l=40, r=10, t=30, b=40), clickmode="event", hovermode="closest",
        legend=dict(itemsizing="constant", title=dict(text="predicted digit" if source == "classifier" else
                                                      "label" if source else "")),
        xaxis=dict(title=axis.format(1), zeroline=False), yaxis=dict(title=axis.format(2), zeroline=False),
        plot_bgcolor="#fafafa", uirevision=f"{run.name}-{m.method}-{m.n}",
    )
    return fig


def _status(m: maps.MapData, cached: bool, run: Run, source: str | None) -> str:
    what = f"{m.method} of the first {m.n:,} latents of **{run.name}**"
    if m.method == "t-SNE":
        what += f" (perplexity {m.perplexity:g}, {m.backend})"
    took = "cached" if cached else f"computed in {m.seconds:.2f} s"
    colour = {"dataset": "coloured by dataset label", "classifier": "coloured by the digit classifier's prediction",
              None: "uncoloured (no labels, and no classifier for this dataset)"}[source]
    extra = " Click a point, or any empty spot, to decode it." if m.method == "PCA" else \
        " Click a point to decode it (t-SNE has no inverse, so empty space snaps to the nearest point)."
    return f"{what}: {took}; {colour}.{extra}"


def map_draw(store: Store, run_name: str, state: dict, method: str, n: float, perplexity: float,
             progress=gr.Progress()):
    """Compute (or fetch from the cache) the map and draw it with the current latent and upload pinned."""
    run = store.get(run_name)
    method, n, perplexity = maps.check_settings(method, n, len(run.z), perplexity)
    cached = maps.cached_map(run, method, n, perplexity) is not None
    if not cached:
        progress(0.0, desc=f"{method} of {n:,} latents")
    m = maps.compute_map(run, method, n, perplexity, progress=lambda f, d: progress(f, desc=d))
    _, _, source = core.labels(store, run)
    return _figure(store, run, m, state), _status(m, cached, run, source)


def map_show(store: Store, run_name: str, state: dict, method: str, n: float, perplexity: float):
    """Opening the tab: redraw instantly if this map is cached (or is a PCA map), else leave it to the button."""
    if not run_name:
        return gr.update(), "Pick a model first."
    run = store.get(run_name)
    try:
        method, n, perplexity = maps.check_settings(method, n, len(run.z), perplexity)
    except ValueError as e:
        return gr.update(), str(e)
    if method == "PCA" or maps.cached_map(run, method, n, perplexity) is not None:
        return map_draw(store, run_name, state, method, n, perplexity, progress=lambda *a, **k: None)
    return gr.update(), f"Press **Draw map** to compute the t-SNE of {n:,} latents (this takes a while on a CPU)."


def map_pins(store: Store, run_name: str, state: dict, method: str, n: float, perplexity: float):
    """The cached map redrawn with the pins moved (after a click sent a new latent to Explore)."""
    run = store.get(run_name)
    method, n, perplexity = maps.check_settings(method, n, len(run.z), perplexity)
    m = maps.cached_map(run, method, n, perplexity)
    return gr.update() if m is None else _figure(store, run, m, state)


def map_click(store: Store, run_name: str, state: dict, clicked: str, method: str, n: float, perplexity: float):
    """A click on the map (JSON from the bridge: {"kind": "point", "row": i} or {"kind": "empty", "x", "y"})
    decodes that latent and makes it the Explore latent."""
    run = store.get(run_name)
    try:
        msg = json.loads(clicked or "")
    except json.JSONDecodeError:
        raise ValueError("the map click must be JSON like {\"kind\": \"point\", \"row\": 12}") from None
    if not isinstance(msg, dict) or msg.get("kind") not in ("point", "empty"):
        raise ValueError("the map click must have kind 'point' (with a row) or 'empty' (with x and y)")
    method, n, perplexity = maps.check_settings(method, n, len(run.z), perplexity)
    if msg["kind"] == "point":
        row = int(msg.get("row", -99))
        if row == -1:
            _, z = current(store, run_name, state)
            what = "the current latent"
        elif row == -2:
            up = (state or {}).get("upload")
            if not up or up.get("run") != run.name:
                raise ValueError("no uploaded image on this map")
            z, what = up["z"], "the uploaded image"
        else:
            if not 0 <= row < n:
                raise ValueError(f"row {row} is not on this map (it shows rows 0..{n - 1})")
            z, what = core.row_latent(run, row), core.describe_row(store, run, row)
    else:
        x, y = float(msg["x"]), float(msg["y"])
        if method == "PCA":
            z = core.pca_map_latent(run, x, y)
            what = f"PCA map point ({x:.2f}, {y:.2f})"
        else:
            m = maps.compute_map(run, method, n, perplexity)
            row = int(np.argmin(((m.xy - np.array([x, y], np.float32)) ** 2).sum(1)))
            z, what = core.row_latent(run, row), core.describe_row(store, run, row) + " (nearest point)"
    uri = core.image_uri(run, z)
    state = with_z(state, run, z, seed=None, note=f"from the map: {what}")
    return uri, state, uri, f"Sent to Explore: {what}"


def build(ctx: Ctx) -> None:
    store = ctx.store
    n_max = len(store.get(ctx.run).z) if ctx.run else 1000
    with gr.Tab("Map", id="map") as tab:
        with gr.Row():
            method = gr.Radio(list(maps.METHODS), value="PCA", label="Method", elem_id="map-method")
            n = gr.Slider(maps.MIN_POINTS, n_max, value=min(n_max, 2000), step=10, label="Sample size (latents)",
                          info="the first N stored latents; t-SNE time grows with N", elem_id="map-n")
            perplexity = gr.Slider(5, 50, value=30, step=1, label="t-SNE perplexity", elem_id="map-perplexity")
            draw = gr.Button("Draw map", variant="primary", elem_id="map-draw")
        status = gr.Markdown(elem_id="map-status", label="map status")
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                plot = gr.Plot(elem_id="map-plot", show_label=False, label="map plot")
            with gr.Column(scale=1, min_width=150):
                picked = gr.HTML("", html_template=PICKED_TEMPLATE, css_template=PICKED_CSS, js_on_load=None,
                                 elem_id="map-picked", label="picked image (PNG data URI)")
                picked_note = gr.Markdown(elem_id="map-picked-note", label="picked point")
        bridge = gr.HTML("", html_template="", js_on_load=BRIDGE_JS, elem_id="map-bridge",
                         elem_classes="lx-hidden")
    ctx["map_config_outputs"] = [n, plot, status, picked, picked_note]
    ctx.c.update(map_tab=tab, map_plot=plot, map_n=n)
    run_dd, state = ctx["run_dd"], ctx["state"]
    settings = [method, n, perplexity]
    draw.click(bind(map_draw, store), [run_dd, state, *settings], [plot, status], api_name="map")
    tab.select(bind(map_show, store), [run_dd, state, *settings], [plot, status], api_visibility="private")
    bridge.click(bind(map_click, store), [run_dd, state, bridge, *settings],
                 [ctx["view"], state, picked, picked_note], api_name="map_click", show_progress="hidden").then(
        bind(ctx["sync_fn"], store), [run_dd, state, ctx["cls"]], ctx["sync_outputs"], show_progress="hidden",
        api_visibility="private").then(
        bind(map_pins, store), [run_dd, state, *settings], [plot], show_progress="hidden", api_visibility="private")


def configure(store: Store, run_name: str | None) -> list:
    n_max = len(store.get(run_name).z) if run_name else 1000
    return [gr.update(maximum=n_max, value=min(n_max, 2000)), None, "", "", ""]
