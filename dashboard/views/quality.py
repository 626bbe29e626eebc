"""Data quality: quarantined rows by dataset and rule, Great Expectations results, source
freshness, and the last runs (all from the lake: run reports and ``quality/``)."""

from __future__ import annotations

import altair as alt
import streamlit as st

from dashboard import fmt, runs, ui

ui.header(
    "Data quality",
    note=f"From the newest {runs.RUNS_READ} run reports in the lake (the sidebar's filters do "
    "not apply to pipeline runs).",
)

reports = ui.reports()
if not reports:
    st.info("No run report in the lake yet: run `peak run`.")
    st.stop()

# -- quarantine --------------------------------------------------------------------------------
st.subheader("Quarantined rows")
per_dataset = runs.datasets(reports)
reasons = runs.quarantine_reasons(reports)
if per_dataset.empty:
    st.info("No run has read any rows yet.")
else:
    totals = per_dataset.groupby("dataset", as_index=False)[
        ["rows_in", "rows_valid", "rows_quarantined", "rows_deduplicated", "files_rejected"]
    ].sum()
    totals["quarantined_share"] = totals["rows_quarantined"] / totals["rows_in"].where(
        totals["rows_in"] > 0
    )
    read = totals[totals["rows_in"] > 0]
    cards = st.columns(max(len(read), 1))
    for card, row in zip(cards, read.itertuples(), strict=False):
        card.metric(
            f"{row.dataset} rows",
            f"{fmt.count(row.rows_quarantined)} quarantined",
            f"{fmt.pct(row.quarantined_share, 2)} of {fmt.count(row.rows_in)} rows",
            delta_color="off",
            delta_arrow="off",
            border=True,
        )
    if not reasons.empty:
        by_rule = reasons.groupby(["dataset", "reason"], as_index=False)["rows"].sum()
        st.altair_chart(
            alt.Chart(by_rule, title="Rows per failed rule (a row can fail several)")
            .mark_bar()
            .encode(
                x=alt.X("rows:Q", title="Rows"),
                y=alt.Y(
                    "reason:N",
                    title=None,
                    sort="-x",
                    axis=alt.Axis(labelLimit=0, labelOverlap=False),  # every bar named, in full
                ),
                color=alt.Color("dataset:N", title="Dataset"),
                tooltip=[
                    alt.Tooltip("dataset:N", title="Dataset"),
                    alt.Tooltip("reason:N", title="Rule"),
                    alt.Tooltip("rows:Q", title="Rows", format=","),
                ],
            )
            .properties(height=alt.Step(20)),
            width="stretch",
        )
    ui.table(
        totals,
        dataset="Dataset",
        rows_in=ui.count("Rows in"),
        rows_valid=ui.count("Valid"),
        rows_quarantined=ui.count("Quarantined"),
        quarantined_share=ui.percent("Quarantined share"),
        rows_deduplicated=ui.count("De-duplicated"),
        files_rejected=ui.count("Files rejected"),
    )
rejected = runs.rejected_files(reports)
if not rejected.empty:
    with st.expander(f"Files rejected whole ({fmt.count(len(rejected))})"):
        ui.table(rejected, run_id="Run", dataset="Dataset", file="File", rule="Rule", reason="Why")

# -- Great Expectations ------------------------------------------------------------------------
st.subheader("Great Expectations")
results = ui.quality_results()
if results.empty:
    st.info("No quality results yet.")
else:
    latest = results.drop_duplicates("dataset")  # newest run first
    cards = st.columns(max(len(latest), 1))
    for card, row in zip(cards, latest.to_dict("records"), strict=False):
        card.metric(
            f"{row['dataset']} suite",
            "passed" if row["success"] else f"{row['failed']} failed",
            f"{row['expectations']} expectations on {fmt.count(row['rows_checked'])} rows",
            delta_color="off",
            delta_arrow="off",
            border=True,
        )
    ui.table(
        results,
        run_id="Run",
        dataset="Dataset",
        success="Passed",
        expectations=ui.count("Expectations"),
        rows_checked=ui.count("Rows checked"),
        failed=ui.count("Failed"),
        failed_expectations="What failed",
    )
    for row in latest.to_dict("records"):
        with st.expander(f"{row['dataset']}: every expectation of run {row['run_id']}"):
            ui.table(
                ui.expectations(row["run_id"], row["dataset"]),
                expectation="Expectation",
                column="Column",
                rule="Contract rule",
                success="Passed",
                element_count=ui.count("Rows"),
                unexpected_count=ui.count("Unexpected"),
                evaluated_by="Evaluated by",
            )
    st.caption(f"Data Docs: {runs.docs_index(ui.context().lake)}")

# -- freshness ---------------------------------------------------------------------------------
st.subheader("Source freshness")
fresh = runs.freshness(reports)
if fresh.empty:
    st.info("No build has measured freshness yet.")
else:
    st.caption(
        f"Measured by run {fresh['run_id'].iloc[0]} against the contracts' warn/error thresholds."
    )
    ui.table(
        fresh,
        source="Source",
        status="Status",
        max_loaded_at=ui.moment("Newest load (UTC)"),
        age_hours_at_run=ui.decimal("Age at the run (h)"),
        age_hours_now=ui.decimal("Age now (h)"),
    )

# -- runs --------------------------------------------------------------------------------------
st.subheader("Last runs")
ui.table(
    runs.runs(reports),
    run_id="Run",
    command="Command",
    status="Status",
    started_at=ui.moment("Started (UTC)"),
    seconds=ui.decimal("Seconds"),
    rows_in=ui.count("Rows in"),
    rows_quarantined=ui.count("Quarantined"),
    files_rejected=ui.count("Files rejected"),
    build="dbt build",
    build_warnings=ui.count("Warnings"),
    error="Error",
)
