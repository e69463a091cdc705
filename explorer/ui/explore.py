"""Explore tab: one big image of the current latent and the sliders that move it.

The slider path is the app's hot loop: ``.input`` events with ``trigger_mode="always_last"``, no
progress overlay and no queue (one plain HTTP round trip), whose handlers decode one latent and return
it as an inline PNG data URI (the browser scales it up crisply; no second request for an image file)
plus the small per-user state. Everything that does not change per move (slider layout, PCA basis,
class directions) comes from the process-wide cache. Other slider groups are brought in line when a
drag ends (``.release``), not on every move.
"""

from __future__ import annotations

import functools

import gradio as gr

from explorer import core
from explorer.latent import MAX_SEED
from explorer.store import Store
from explorer.ui.common import Ctx, bind, current, with_z

PCS_MODE, DIMS_MODE = "Principal directions", "Dimensions"
VIEW_TEMPLATE = '<img class="lx-view" src="${value}" alt="decoded image of the current latent">'
VIEW_CSS = """
img.lx-view { width: 100%; max-width: 448px; aspect-ratio: 1 / 1; image-rendering: pixelated;
              display: block; margin: 0 auto; border-radius: 6px; background: #000; }
"""


# ---- handlers: the fast path ---------------------------------------------------------------------------

def explore_dims(store: Store, run_name: str, state: dict, *values: float):
    """Per-dimension sliders moved: the latent is exactly the slider values (display order)."""
    run = store.get(run_name)
    z = core.latent_from_dims(run, values)
    return core.image_uri(run, z), with_z(state, run, z, note="dimension sliders")


def explore_pcs(store: Store, run_name: str, state: dict, *values: float):
    """Principal-direction sliders moved: those coordinates set, the rest of the latent kept."""
    run, z = current(store, run_name, state)
    z = core.latent_from_pcs(run, z, values)
    return core.image_uri(run, z), with_z(state, run, z, note="principal directions")


def explore_dim(store: Store, slot: int, run_name: str, state: dict, value: float):
    """One per-dimension slider moved (the UI's path: one value per move)."""
    run, z = current(store, run_name, state)
    z = core.latent_with_dim(run, z, slot, value)
    return core.image_uri(run, z), with_z(state, run, z, note="dimension sliders")


def explore_pc(store: Store, index: int, run_name: str, state: dict, value: float):
    """One principal-direction slider moved (the UI's path: one value per move)."""
    run, z = current(store, run_name, state)
    z = core.latent_with_pc(run, z, index, value)
    return core.image_uri(run, z), with_z(state, run, z, note="principal directions")


def explore_class(store: Store, run_name: str, state: dict, class_name: str, value: float):
    run, z = current(store, run_name, state)
    z = core.latent_from_class(store, run, z, class_name, value)
    return core.image_uri(run, z), with_z(state, run, z, note=f"towards {class_name}")


def explore_truncation(store: Store, run_name: str, state: dict, psi: float):
    run, z = current(store, run_name, state)
    old = (state or {}).get("psi", 1.0) if (state or {}).get("run") == run.name else 1.0
    z = core.retruncate(run, z, old, psi)
    return core.image_uri(run, z), with_z(state, run, z, psi=float(psi))


# ---- handlers: actions ---------------------------------------------------------------------------------

def explore_random(store: Store, run_name: str, state: dict, psi: float):
    """A new random seed (shown in the seed box) and its latent."""
    import secrets

    seed = secrets.randbelow(100_000)
    return explore_seed(store, run_name, state, seed, psi) + (seed,)


def explore_seed(store: Store, run_name: str, state: dict, seed: float, psi: float = 1.0):
    run = store.get(run_name)
    psi = float(psi if run.kind == "gan" else 1.0)
    z = core.seed_latent(run, seed, psi)
    return core.image_uri(run, z), with_z(state, run, z, seed=int(seed), psi=psi, note=f"seed {int(seed)}")


def explore_reset(store: Store, run_name: str, state: dict):
    """Back to the centre of the latents: every principal coordinate 0."""
    run = store.get(run_name)
    z = core.center_latent(run)
    return core.image_uri(run, z), with_z(state, run, z, seed=None, psi=1.0, note="centre of the data"), 1.0


def explore_set_latent(store: Store, run_name: str, state: dict, text: str):
    """Set the current latent from a JSON list (the Latent vector box)."""
    run = store.get(run_name)
    z = core.parse_latent(run, text)
    return core.image_uri(run, z), with_z(state, run, z, seed=None, note="latent set by hand")


def generate(store: Store, run_name: str, seed: float | None, latent: str | None):
    """Decode a latent (JSON list) or, when it is empty, the prior draw of ``seed``: the image at full
    size (crisp upscale) and the latent it came from. Does not change the session."""
    run = store.get(run_name)
    z = core.parse_latent(run, latent) if (latent or "").strip() else core.seed_latent(run, seed)
    return core.display_pixels(core.image(run, z), 448), core.format_latent(z)


# ---- slider syncing --------------------------------------------------------------------------------------

def _value(spec: core.SliderSpec, v: float) -> dict:
    if v < spec.lo or v > spec.hi:  # keep a latent from outside the data reachable on its slider
        return gr.update(value=v, minimum=min(spec.lo, v), maximum=max(spec.hi, v))
    return gr.update(value=v)


def dims_updates(store: Store, run, z) -> list:
    ctl = core.controls(store, run)
    return [_value(s, v) if s.visible else gr.update() for s, v in zip(ctl.dims, core.dim_values(run, z), strict=True)]


def pcs_updates(store: Store, run, z) -> list:
    ctl = core.controls(store, run)
    return [_value(s, v) if s.visible else gr.update() for s, v in zip(ctl.pcs, core.pc_values(run, z), strict=True)]


def class_update(store: Store, run, z, class_name: str | None) -> dict:
    lo, hi = core.class_range(store, run, class_name)
    v = core.class_value(store, run, z, class_name)
    return gr.update(value=v, minimum=min(lo, v), maximum=max(hi, v))


def _caption(run, state: dict) -> str:
    return f"**{run.name}** · {state.get('note') or ''}"


def sync_all(store: Store, run_name: str, state: dict, class_name: str | None):
    """Every slider, the latent box and the caption brought in line with the session's latent."""
    run, z = current(store, run_name, state)
    return [core.format_latent(z), _caption(run, state or {}), *dims_updates(store, run, z),
            *pcs_updates(store, run, z), class_update(store, run, z, class_name)]


def sync_after_dims(store: Store, run_name: str, state: dict, class_name: str | None, *values: float):
    run = store.get(run_name)
    z = core.latent_from_dims(run, values)
    state = with_z(state, run, z, note="dimension sliders")
    return [state, core.format_latent(z), _caption(run, state), *pcs_updates(store, run, z),
            class_update(store, run, z, class_name)]


def sync_after_pcs(store: Store, run_name: str, state: dict, class_name: str | None, *values: float):
    run, z = current(store, run_name, state)
    z = core.latent_from_pcs(run, z, values)
    state = with_z(state, run, z, note="principal directions")
    return [state, core.format_latent(z), _caption(run, state), *dims_updates(store, run, z),
            class_update(store, run, z, class_name)]


def sync_after_class(store: Store, run_name: str, state: dict, class_name: str, value: float):
    run, z = current(store, run_name, state)
    z = core.latent_from_class(store, run, z, class_name, value)
    state = with_z(state, run, z, note=f"towards {class_name}")
    return [state, core.format_latent(z), _caption(run, state), *dims_updates(store, run, z),
            *pcs_updates(store, run, z)]


def class_changed(store: Store, run_name: str, state: dict, class_name: str | None):
    run, z = current(store, run_name, state)
    return class_update(store, run, z, class_name)


def mode_changed(mode: str):
    return gr.update(visible=mode == PCS_MODE), gr.update(visible=mode == DIMS_MODE)


# ---- configuration for a run -------------------------------------------------------------------------------

def configure(store: Store, run_name: str | None, state: dict | None) -> list:
    """Updates for every configurable Explore component when the model changes (see ``config_outputs``)."""
    if not run_name:
        hidden = gr.update(visible=False)
        return [hidden, hidden, gr.update(), gr.update(), gr.update(visible=False), gr.update(visible=False),
                gr.update(), gr.update(), *[hidden] * core.MAX_DIM_SLIDERS, *[hidden] * core.N_PCS, hidden]
    run, z = current(store, run_name, state)
    ctl = core.controls(store, run)
    mode_choices = [PCS_MODE, DIMS_MODE] if ctl.dims_available else [PCS_MODE]
    dims_vals = core.dim_values(run, z)
    pcs_vals = core.pc_values(run, z)
    cls = ctl.classes[0] if ctl.classes else None
    lo, hi = core.class_range(store, run, cls)
    cls_info = "classes as the digit classifier predicts them for the samples" \
        if ctl.label_source == "classifier" else "from the mean of all encodings towards the class mean"

    def slider(spec: core.SliderSpec, v: float) -> dict:
        if not spec.visible:  # unused slots: hiding them is all the update they need
            return gr.update(visible=False)
        return gr.update(label=spec.label, minimum=min(spec.lo, v), maximum=max(spec.hi, v), step=spec.step,
                         value=v, visible=True, info=spec.info)

    return [
        gr.update(choices=mode_choices, value=PCS_MODE),
        gr.update(visible=ctl.truncation, value=1.0),
        ctl.pcs_note,
        ctl.dims_note,
        gr.update(visible=True),  # pcs group
        gr.update(visible=False),  # dims group
        gr.update(choices=ctl.classes, value=cls, info=cls_info),
        gr.update(visible=bool(ctl.classes)),  # class row
        *[slider(s, v) for s, v in zip(ctl.dims, dims_vals, strict=True)],
        *[slider(s, v) for s, v in zip(ctl.pcs, pcs_vals, strict=True)],
        gr.update(minimum=lo, maximum=hi, value=core.class_value(store, run, z, cls), step=0.01),
    ]


# ---- layout and wiring -----------------------------------------------------------------------------------

def _sliders(specs: list[core.SliderSpec] | None, values: list[float] | None, n: int, prefix: str) -> list:
    """``n`` sliders in a scrolling column; hidden ones are kept so every run can reuse the same set."""
    out = []
    with gr.Column(elem_classes="lx-sliders"):
        for i in range(n):
            spec = specs[i] if specs else core.SliderSpec(f"{prefix} {i}", -1.0, 1.0, visible=False)
            v = values[i] if values else 0.0
            out.append(gr.Slider(min(spec.lo, v), max(spec.hi, v), value=v, step=spec.step, label=spec.label,
                                 visible=spec.visible, elem_id=f"{prefix}-{i}"))
    return out


def build(ctx: Ctx) -> None:
    store = ctx.store
    run = store.get(ctx.run) if ctx.run else None
    ctl = core.controls(store, run) if run else None
    z = ctx["initial_state"]["z"]
    with gr.Tab("Explore", id="explore"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=320):
                view = gr.HTML(core.image_uri(run, z) if run else "", html_template=VIEW_TEMPLATE,
                               css_template=VIEW_CSS, js_on_load=None, elem_id="explore-view",
                               label="image (PNG data URI)")
                caption = gr.Markdown(f"**{run.name}** · seed 0" if run else "", elem_id="explore-caption")
                with gr.Row():
                    random_btn = gr.Button("Random", variant="primary", elem_id="random-btn")
                    reset_btn = gr.Button("Reset to centre", elem_id="reset-btn")
                with gr.Row(equal_height=True):
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, elem_id="seed",
                                     scale=2)
                    seed_btn = gr.Button("Go to seed", elem_id="seed-btn", scale=1)
                truncation = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label="Truncation ψ",
                                       info="GAN: scale the latent towards the mean (ψ < 1: typical, ψ > 1: unusual)",
                                       visible=bool(ctl and ctl.truncation), elem_id="truncation")
            with gr.Column(scale=2, min_width=320):
                mode = gr.Radio([PCS_MODE, DIMS_MODE] if ctl and ctl.dims_available else [PCS_MODE],
                                value=PCS_MODE, label="Sliders", elem_id="slider-mode")
                with gr.Column(visible=True) as pcs_group:
                    pcs_note = gr.Markdown(ctl.pcs_note if ctl else "", elem_classes="lx-note")
                    pcs = _sliders(ctl.pcs if ctl else None, core.pc_values(run, z) if run else None,
                                   core.N_PCS, "pc")
                with gr.Column(visible=False) as dims_group:
                    dims_note = gr.Markdown(ctl.dims_note if ctl else "", elem_classes="lx-note")
                    dims = _sliders(ctl.dims if ctl else None, core.dim_values(run, z) if run else None,
                                    core.MAX_DIM_SLIDERS, "dim")
                with gr.Column(visible=bool(ctl and ctl.classes), elem_id="class-row") as class_row:
                    cls0 = ctl.classes[0] if ctl and ctl.classes else None
                    cls = gr.Dropdown(ctl.classes if ctl else [], value=cls0, label="Class direction: towards",
                                      elem_id="class-choice", allow_custom_value=True)
                    lo, hi = core.class_range(store, run, cls0) if run else (-3, 3)
                    cls_v = core.class_value(store, run, z, cls0) if run else 0.0
                    cls_slider = gr.Slider(min(lo, cls_v), max(hi, cls_v), value=cls_v, step=0.01,
                                           label="Position along it (σ of the data)", elem_id="class-slider")
        with gr.Accordion("Latent vector and export", open=False):
            latent_box = gr.Textbox(run and core.format_latent(z), label="Current latent (JSON list)", lines=3,
                                    elem_id="latent-box", buttons=["copy"])
            with gr.Row():
                apply_btn = gr.Button("Set this latent", elem_id="apply-latent")
                export_btn = gr.Button("Export image (PNG)", elem_id="export-btn")
            export_img = gr.Image(label="Decoded image", format="png", interactive=False, height=300,
                                  elem_id="export-image")
            # API-only triggers of the all-sliders endpoints (never shown)
            api_dims, api_pcs = gr.Button(visible=False), gr.Button(visible=False)

    run_dd, state = ctx["run_dd"], ctx["state"]
    sync_outputs = [latent_box, caption, *dims, *pcs, cls_slider]
    ctx.c.update(view=view, caption=caption, seed=seed, truncation=truncation, mode=mode, dims=dims, pcs=pcs,
                 cls=cls, cls_slider=cls_slider, latent_box=latent_box, sync_outputs=sync_outputs)
    ctx["explore_config_outputs"] = [mode, truncation, pcs_note, dims_note, pcs_group, dims_group, cls, class_row,
                                     *dims, *pcs, cls_slider]
    sync = bind(sync_all, store)
    fast = dict(trigger_mode="always_last", show_progress="hidden", queue=False)
    quiet = dict(show_progress="hidden", api_visibility="private")

    # Each slider's move carries only its own value: Gradio's per-event cost grows with the number of
    # inputs (measured in the browser: 16 slider inputs took a do-nothing handler from 16 to 22-29 ms per
    # move). The all-sliders handlers stay as API endpoints behind hidden buttons.
    for slot, s in enumerate(dims):
        s.input(functools.partial(bind(explore_dim, store), slot), [run_dd, state, s], [view, state],
                api_visibility="private", **fast)
    for index, s in enumerate(pcs):
        s.input(functools.partial(bind(explore_pc, store), index), [run_dd, state, s], [view, state],
                api_visibility="private", **fast)
    api_dims.click(bind(explore_dims, store), [run_dd, state, *dims], [view, state], api_name="explore_dims", **fast)
    api_pcs.click(bind(explore_pcs, store), [run_dd, state, *pcs], [view, state], api_name="explore_pcs", **fast)
    gr.on([s.release for s in dims], bind(sync_after_dims, store), [run_dd, state, cls, *dims],
          [state, latent_box, caption, *pcs, cls_slider], **quiet)
    gr.on([s.release for s in pcs], bind(sync_after_pcs, store), [run_dd, state, cls, *pcs],
          [state, latent_box, caption, *dims, cls_slider], **quiet)
    cls_slider.input(bind(explore_class, store), [run_dd, state, cls, cls_slider], [view, state],
                     api_name="explore_class", **fast)
    cls_slider.release(bind(sync_after_class, store), [run_dd, state, cls, cls_slider],
                       [state, latent_box, caption, *dims, *pcs], **quiet)
    cls.input(bind(class_changed, store), [run_dd, state, cls], cls_slider, **quiet)
    truncation.input(bind(explore_truncation, store), [run_dd, state, truncation], [view, state],
                     api_name="explore_truncation", **fast)
    truncation.release(sync, [run_dd, state, cls], sync_outputs, **quiet)
    mode.input(mode_changed, mode, [pcs_group, dims_group], queue=False, show_progress="hidden",
               api_visibility="private")

    random_btn.click(bind(explore_random, store), [run_dd, state, truncation], [view, state, seed],
                     api_name="random", show_progress="hidden").then(sync, [run_dd, state, cls], sync_outputs, **quiet)
    gr.on([seed_btn.click, seed.submit], bind(explore_seed, store), [run_dd, state, seed, truncation], [view, state],
          api_name="explore_seed", show_progress="hidden").then(sync, [run_dd, state, cls], sync_outputs, **quiet)
    reset_btn.click(bind(explore_reset, store), [run_dd, state], [view, state, truncation], api_name="reset",
                    show_progress="hidden").then(sync, [run_dd, state, cls], sync_outputs, **quiet)
    apply_btn.click(bind(explore_set_latent, store), [run_dd, state, latent_box], [view, state],
                    api_name="set_latent").then(sync, [run_dd, state, cls], sync_outputs, **quiet)
    export_btn.click(bind(generate, store), [run_dd, seed, latent_box], [export_img, latent_box], api_name="generate")
