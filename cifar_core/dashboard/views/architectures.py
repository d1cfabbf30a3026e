"""Architectures: pick a preset or edit one; see layers, output shapes and parameters before training."""

from dataclasses import replace

import pandas as pd
import streamlit as st

from cifar_core.dashboard import cache, navigation
from cifar_core.model import sizing, specs

st.title("Architectures")
st.caption("Pick a preset or edit one. The layer table and parameter count follow every edit; "
           "problems are listed instead of a crash.")

saved = specs.saved_specs(cache.specs_folder())
choices = sizing.architectures(saved)
name = st.selectbox("Start from", list(choices), key="arch_choice",
                    format_func=lambda n: f"{n} (saved)" if n in saved else n if n in specs.PRESETS else
                    f"{n} (the fast recipe's budget family)")
base = choices[name]
st.caption(base.description or " ")

LIMITS = specs.LIMITS
BLOCK_COLUMNS = {
    "filters": st.column_config.NumberColumn("filters", min_value=1, max_value=LIMITS.filters, step=1, required=True,
                                             width=80),
    "kernel_size": st.column_config.NumberColumn("kernel", min_value=1, max_value=LIMITS.kernel_size, step=1,
                                                 required=True, width=80),
    "convs": st.column_config.NumberColumn("convs", min_value=1, max_value=LIMITS.convs_per_block, step=1,
                                           required=True, width=76),
    "batch_norm": st.column_config.CheckboxColumn("BN", help="batch normalization after each conv", width=56),
    "bn_after_relu": st.column_config.CheckboxColumn(
        "after ReLU", width=104, help="Batch norm after the ReLU (as Conv2D(activation='relu') + "
                                     "BatchNormalization() writes it) instead of between the conv and its ReLU"),
    "pool": st.column_config.SelectboxColumn("pool", options=list(specs.POOLS), required=True, width=80),
    "pool_first": st.column_config.CheckboxColumn(
        "pool first", width=96, help="Pool right after the last conv, before its batch norm and ReLU (airbench's "
                                     "order): the same function where batch norm's scale is positive, faster"),
    "dropout": st.column_config.NumberColumn("dropout", min_value=0.0, max_value=0.95, step=0.05, width=88),
}

st.subheader("Conv blocks")
blocks_df = pd.DataFrame([vars(b) for b in base.blocks])[list(BLOCK_COLUMNS)]
edited = st.data_editor(blocks_df, num_rows="dynamic", column_config=BLOCK_COLUMNS,
                        key=f"blocks_{name}", width="stretch", hide_index=True)
st.subheader("Head")
h1, h2, h3 = st.columns(3)
pooling = h1.selectbox("pooling", specs.HEAD_POOLS, index=specs.HEAD_POOLS.index(base.head.pooling),
                       key=f"pool_{name}")
dense_text = h2.text_input("dense units", ", ".join(map(str, base.head.dense)), key=f"dense_{name}",
                           help="comma-separated, e.g. 128, 32")
head_dropout = h3.number_input("dropout", 0.0, 0.95, float(base.head.dropout), 0.05, key=f"hdrop_{name}")

spec, problems = specs.from_editor(base, edited.to_dict("records"), pooling, dense_text, head_dropout)
if problems:
    st.subheader("Cannot build this network")
    for problem in problems:
        st.error(problem)
else:
    st.subheader("Layers")
    table, total = cache.layer_table(spec.to_json())
    left, right = st.columns([1, 3], gap="medium")
    left.metric("Parameters", f"{total:,}", help="trainable and non-trainable")
    if spec != base:
        left.caption(f"edited from **{base.name}**")
    right.dataframe(table, hide_index=True, width="stretch",
                    column_config={"params": st.column_config.NumberColumn(format="%d")})


def save_and_train_ui(spec: specs.ArchitectureSpec) -> None:
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
        navigation.go(navigation.TRAIN)


if spec and not problems:
    st.divider()
    if not cache.read_only():
        save_and_train_ui(spec)
    with st.expander("Spec as JSON (for `cifar-lab arch FILE.json` and `train --arch FILE.json`)"):
        st.code(spec.to_json(), language="json")
