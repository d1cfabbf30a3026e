"""Architectures: pick a preset or edit one; see layers, output shapes and parameters before training."""

from dataclasses import replace

import pandas as pd
import streamlit as st

from cifar_core import specs
from ui import cache

st.title("Architectures")
st.caption("Pick a preset or edit one. The layer table and parameter count follow every edit; "
           "problems are listed instead of a crash.")

saved = specs.saved_specs(cache.specs_folder())
choices = {**specs.PRESETS, **saved}
name = st.selectbox("Start from", list(choices), key="arch_choice",
                    format_func=lambda n: f"{n} (saved)" if n in saved else n)
base = choices[name]
st.caption(base.description or " ")

BLOCK_COLUMNS = {
    "filters": st.column_config.NumberColumn("filters", min_value=1, step=1, required=True),
    "kernel_size": st.column_config.NumberColumn("kernel", min_value=1, step=1, required=True),
    "convs": st.column_config.NumberColumn("convs", min_value=1, step=1, required=True),
    "batch_norm": st.column_config.CheckboxColumn("batch norm"),
    "pool": st.column_config.SelectboxColumn("pool", options=list(specs.POOLS), required=True),
    "dropout": st.column_config.NumberColumn("dropout", min_value=0.0, max_value=0.95, step=0.05),
}

left, right = st.columns([6, 5], gap="medium")
with left:
    st.subheader("Conv blocks")
    blocks_df = pd.DataFrame([vars(b) for b in base.blocks])[list(BLOCK_COLUMNS)]
    edited = st.data_editor(blocks_df, num_rows="dynamic", column_config=BLOCK_COLUMNS,
                            key=f"blocks_{name}", width="stretch", hide_index=False)
    st.subheader("Head")
    h1, h2, h3 = st.columns(3)
    pooling = h1.selectbox("pooling", specs.HEAD_POOLS, index=specs.HEAD_POOLS.index(base.head.pooling),
                           key=f"pool_{name}")
    dense_text = h2.text_input("dense units", ", ".join(map(str, base.head.dense)), key=f"dense_{name}",
                               help="comma-separated, e.g. 128, 32")
    head_dropout = h3.number_input("dropout", 0.0, 0.95, float(base.head.dropout), 0.05, key=f"hdrop_{name}")


def edited_spec() -> tuple[specs.ArchitectureSpec | None, list[str]]:
    """The spec the widgets describe, or the problems that keep it from being one."""
    try:
        dense = tuple(int(u) for u in dense_text.replace(" ", "").split(",") if u)
    except ValueError:
        return None, [f"Dense units {dense_text!r} must be whole numbers separated by commas, e.g. 128, 32."]
    rows = edited.dropna(how="all")
    if rows[["filters", "kernel_size", "convs", "pool"]].isna().any().any():
        return None, ["Fill in filters, kernel, convs and pool for every block (or delete the empty row)."]
    blocks = tuple(specs.ConvBlock(int(r.filters), int(r.kernel_size), int(r.convs), bool(r.batch_norm),
                                   str(r.pool), float(r.dropout or 0.0)) for r in rows.itertuples())
    spec = replace(base, blocks=blocks, head=specs.Head(pooling, dense, float(head_dropout)))
    return spec, specs.validate(spec)


spec, problems = edited_spec()
with right:
    if problems:
        st.subheader("Cannot build this network")
        for problem in problems:
            st.error(problem)
    else:
        table, total = cache.layer_table(spec.to_json())
        changed = spec != base
        st.metric("Parameters", f"{total:,}", help="trainable and non-trainable")
        if changed:
            st.caption(f"edited from **{base.name}**")
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"params": st.column_config.NumberColumn(format="%d")})

if spec and not problems:
    st.divider()
    s1, s2, s3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    new_name = s1.text_input("Save as", value="" if spec.name in specs.PRESETS else spec.name,
                             placeholder="my-cnn", key="save_name")
    if s2.button("Save architecture", disabled=not new_name):
        try:
            path = specs.save_spec(replace(spec, name=new_name.strip()), cache.specs_folder())
            st.success(f"Saved as {new_name} ({path}). It is now in every architecture list.")
        except specs.SpecError as exc:
            st.error(str(exc))
    if s3.button("Train this architecture", type="primary"):
        st.session_state["train_spec"] = spec.to_json()
        st.switch_page("pages/train.py")
    with st.expander("Spec as JSON (for `cifar-lab arch FILE.json` and `train --arch FILE.json`)"):
        st.code(spec.to_json(), language="json")
