"""The dashboard's entry point: ``streamlit run dashboard/app.py`` (what ``peak dashboard`` runs).

It sets the page up, draws the shared filters in the sidebar and hands over to the page chosen
in the navigation. Each page (``views/*.py``) only renders: its figures come from
:mod:`dashboard.data` (the warehouse), :mod:`dashboard.live` (Redis) and :mod:`dashboard.runs`
(the lake's run reports), read through the caches of :mod:`dashboard.ui`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import ui  # noqa: E402

HERE = Path(__file__).resolve().parent

#: The pages, grouped as the navigation shows them.
PAGES = {
    "Members": [
        ("views/overview.py", "Overview", ":material/dashboard:"),
        ("views/leaderboard.py", "Leaderboard", ":material/emoji_events:"),
        ("views/locations.py", "Locations", ":material/location_on:"),
        ("views/classes.py", "Classes and instructors", ":material/fitness_center:"),
        ("views/retention.py", "Retention", ":material/group:"),
        ("views/member.py", "Member", ":material/person_search:"),
    ],
    "Pipeline": [
        ("views/quality.py", "Data quality", ":material/fact_check:"),
        ("views/activation.py", "Activation", ":material/send:"),
    ],
}

st.set_page_config(page_title="Peak Fitness", page_icon=":material/exercise:", layout="wide")
# The tables' built-in CSV export writes cells as they are (a member's "=HYPERLINK(…)" would run
# in a spreadsheet): off; every CSV comes from ui.download_csv, formula-safe.
st.set_option("client.disableDataExport", True)
navigation = st.navigation(
    {
        section: [
            st.Page(str(HERE / path), title=title, icon=icon, default=path.endswith("overview.py"))
            for path, title, icon in pages
        ]
        for section, pages in PAGES.items()
    }
)
ui.sidebar()
navigation.run()
