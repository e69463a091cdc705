"""The Gradio app: ``build_app`` assembles the tabs and wires model switching; it never launches.

Tabs (each a module with ``build(ctx)`` and plain handler functions): Models (picker), Explore,
Interpolate, Map, Reconstruct. Handlers take the process-wide ``Store`` as their first argument
(bound with ``functools.partial``) and the per-user ``gr.State`` dict, which holds only names and
small vectors.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from explorer.store import Store, get_store
from explorer.ui import explore, interpolate, mapview, picker, reconstruct
from explorer.ui.common import Ctx, bind, new_state

CSS = """
.lx-sliders { max-height: 62vh; overflow-y: auto; overflow-x: hidden; padding-right: 4px; flex-wrap: nowrap; }
.lx-sliders > .form { flex-shrink: 0; }
.lx-note { font-size: 0.9em; opacity: 0.85; }
.lx-hidden { display: none !important; }
#explore-caption { text-align: center; }
#interp-strip img { image-rendering: pixelated; }
#recon-input img, #recon-output img, #export-image img, #interp-gif img { image-rendering: pixelated; }
"""
TITLE = "Latent Explorer"


def launch_kwargs() -> dict:
    """What ``launch()`` needs besides host and port (Gradio 6 takes css and theme there).

    ``run_history=False``: Gradio would otherwise record every event (each slider move) in the browser's
    storage, which costs a structured clone and a localStorage write per move on the hot path.
    """
    return dict(css=CSS, theme=gr.themes.Soft(), run_history=False)


def load_run(store: Store, run_name: str, state: dict | None):
    """Switch this session to ``run_name``: load it (cached for everyone) and reconfigure every tab."""
    run = store.get(run_name) if run_name else None
    state = new_state(run)
    from explorer import core

    view = core.image_uri(run, state["z"]) if run else ""
    caption = f"**{run.name}** · seed 0" if run else ""
    return [state, view, caption, picker.details(store, run_name), 0,
            *explore.configure(store, run_name, state), *interpolate.configure(store, run_name),
            *mapview.configure(store, run_name), *reconstruct.configure(store, run_name)]


def build_app(checkpoints_dir: str | Path = "checkpoints", device: str = "auto", *, store: Store | None = None,
              run: str | None = None) -> gr.Blocks:
    """The whole app for the runs in ``checkpoints_dir``, models on ``device`` ("auto": cuda, mps, cpu)."""
    store = store or get_store(checkpoints_dir, device)
    run = run or picker.default_run(store)
    initial = new_state(store.get(run) if run else None)
    runs = store.list()
    names = [r.name for r in runs if r.explorable]
    with gr.Blocks(title=TITLE) as demo:
        with gr.Row(equal_height=True, elem_id="header"):
            gr.Markdown(f"## {TITLE}\nAEs, VAEs and GANs from `{store.root}`, decoded live on **{store.device}**.",
                        elem_id="title")
            run_dd = gr.Dropdown(names, value=run, label="Model", elem_id="run-select", scale=0, min_width=260,
                                 allow_custom_value=True)  # runs added later are checked by the store
        state = gr.State(initial)
        ctx = Ctx(store=store, run=run)
        ctx.c.update(run_dd=run_dd, state=state, initial_state=initial, sync_fn=explore.sync_all)
        with gr.Tabs(selected="explore" if run else "models") as tabs:
            ctx["tabs"] = tabs
            with gr.Tab("Models", id="models"):
                table = gr.Dataframe(picker.table(runs), headers=picker.COLUMNS, interactive=False, wrap=True,
                                     elem_id="runs-table")
                with gr.Row():
                    refresh_btn = gr.Button("Refresh", elem_id="refresh-btn", scale=0, min_width=120)
                    gr.Markdown(f"Device: **{store.device}** · checkpoints: `{store.root}` · click a row to"
                                " switch model")
                info = gr.Markdown(picker.details(store, run), elem_id="run-details")
            explore.build(ctx)
            interpolate.build(ctx)
            mapview.build(ctx)
            reconstruct.build(ctx)

        outputs = [state, ctx["view"], ctx["caption"], info, ctx["seed"], *ctx["explore_config_outputs"],
                   *ctx["interp_config_outputs"], *ctx["map_config_outputs"], *ctx["recon_config_outputs"]]
        run_dd.change(bind(load_run, store), [run_dd, state], outputs, api_name="load_run")
        refresh_btn.click(bind(picker.refresh, store), [run_dd], [table, run_dd], api_name="list_runs")

        def select_row(evt: gr.SelectData):
            return picker.select_row(store, evt)

        table.select(select_row, None, run_dd, api_visibility="private")
    return demo
