"""Interpolate tab: a path between two latents, as a strip of frames and a looping animated GIF."""

from __future__ import annotations

import gradio as gr

from explorer import core
from explorer.store import Store
from explorer.ui.common import Ctx, bind, current, file_path, tmp_path

SOURCES = ("Seed", "Explore latent", "Dataset sample", "Upload")


def endpoint(store: Store, run_name: str, state: dict, source: str, seed: float | None, class_name: str | None,
             sample: float | None, upload, invert: str = "auto", progress=None) -> tuple[list[float], str]:
    """One end of the path: (latent, what it is)."""
    run = store.get(run_name)
    if source == "Seed":
        return core.seed_latent(run, seed), f"seed {int(seed)}"
    if source == "Explore latent":
        _, z = current(store, run_name, state)
        return z, "the Explore latent"
    if source == "Dataset sample":
        return core.dataset_sample(store, run, class_name, sample if sample is not None else 0)
    if source == "Upload":
        path = file_path(upload)
        if path is None:
            raise ValueError("choose an image to upload for this end, or pick another source")
        up = core.upload(store, run, path, invert, progress=progress)
        return up.z, "the uploaded image"
    raise ValueError(f"unknown endpoint source {source!r}; choose one of {list(SOURCES)}")


def interpolate(store: Store, run_name: str, state: dict,
                a_source: str, a_seed: float | None, a_class: str | None, a_sample: float | None, a_upload,
                b_source: str, b_seed: float | None, b_class: str | None, b_sample: float | None, b_upload,
                steps: float, method: str, progress=gr.Progress()):
    """Frames from end A to end B: a strip image, the animated GIF (shown and downloadable) and a caption."""
    run = store.get(run_name)

    def report(where):
        return lambda f: progress(f, desc=f"finding the latent of {where} by optimisation")

    za, what_a = endpoint(store, run_name, state, a_source, a_seed, a_class, a_sample, a_upload,
                          progress=report("A"))
    zb, what_b = endpoint(store, run_name, state, b_source, b_seed, b_class, b_sample, b_upload,
                          progress=report("B"))
    strip, gif = core.interpolation(run, za, zb, steps, method,
                                    tmp_path(f"{run.name}-{method}-{int(steps)}-frames.gif"))
    caption = f"{int(steps)} frames, {method}, from {what_a} to {what_b} ({run.name})"
    return strip, gif, gif, caption


def source_changed(source: str):
    return (gr.update(visible=source == "Seed"), gr.update(visible=source == "Dataset sample"),
            gr.update(visible=source == "Upload"))


def configure(store: Store, run_name: str | None) -> list:
    if not run_name:
        return [gr.update(choices=["any"], value="any")] * 2
    run = store.get(run_name)
    classes = core.controls(store, run).classes
    choices = ["any", *classes]
    return [gr.update(choices=choices, value=classes[0] if classes else "any")] * 2


def _end(ctx: Ctx, key: str, title: str, default_seed: int, classes: list[str]) -> dict:
    with gr.Column(min_width=260):
        gr.Markdown(f"**{title}**")
        source = gr.Radio(list(SOURCES), value="Seed", label="From", elem_id=f"{key}-source")
        seed = gr.Number(default_seed, label="Seed", precision=0, minimum=0, elem_id=f"{key}-seed")
        with gr.Row(visible=False) as sample_row:
            cls = gr.Dropdown(["any", *classes], value=classes[0] if classes else "any", label="Class",
                              elem_id=f"{key}-class", allow_custom_value=True)
            sample = gr.Number(0, label="Sample #", precision=0, minimum=0, elem_id=f"{key}-sample")
        upload = gr.File(label="Image", visible=False, elem_id=f"{key}-upload", height=120)
    source.input(source_changed, source, [seed, sample_row, upload], queue=False, show_progress="hidden",
                 api_visibility="private")
    return dict(source=source, seed=seed, cls=cls, sample=sample, upload=upload, sample_row=sample_row)


def build(ctx: Ctx) -> None:
    store = ctx.store
    classes = core.controls(store, store.get(ctx.run)).classes if ctx.run else []
    with gr.Tab("Interpolate", id="interpolate"):
        with gr.Row():
            a = _end(ctx, "a", "Start (A)", 0, classes)
            b = _end(ctx, "b", "End (B)", 1, classes)
            with gr.Column(min_width=260):
                steps = gr.Slider(2, 64, value=10, step=1, label="Frames", elem_id="interp-steps")
                method = gr.Radio(["slerp", "lerp"], value="slerp", label="Path",
                                  info="slerp: along the sphere where Gaussian latents live; lerp: straight line")
                go = gr.Button("Interpolate", variant="primary", elem_id="interp-btn")
        caption = gr.Markdown(elem_id="interp-caption", label="interpolation caption")
        strip = gr.Image(label="Frames", format="png", interactive=False, elem_id="interp-strip")
        with gr.Row():
            gif_view = gr.Image(label="Animation", type="filepath", interactive=False, height=260,
                                elem_id="interp-gif")
            gif_file = gr.File(label="Download GIF", interactive=False, elem_id="interp-gif-file")
    ctx.c.update(interp_a=a, interp_b=b)
    ctx["interp_config_outputs"] = [a["cls"], b["cls"]]
    inputs = [ctx["run_dd"], ctx["state"],
              a["source"], a["seed"], a["cls"], a["sample"], a["upload"],
              b["source"], b["seed"], b["cls"], b["sample"], b["upload"], steps, method]
    go.click(bind(interpolate, store), inputs, [strip, gif_view, gif_file, caption], api_name="interpolate")
