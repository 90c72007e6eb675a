"""The floor page of the pages figure: one hand-written SQL query, one table, nothing else.

bench/pages.py registers it in the navigation (in its own process only) and runs it through ui.py
with AppTest, with the query, its parameters and a title in session state.
"""

import pandas as pd
import streamlit as st
from sqlalchemy import bindparam, text

from services.db.base import UTCDateTime
from services.db.engine import get_engine

params = st.session_state["floor_params"]
stmt = text(st.session_state["floor_sql"])
times = [bindparam(k, type_=UTCDateTime()) for k in ("now", "cutoff", "month_ago") if f":{k}" in stmt.text]
if times:
    stmt = stmt.bindparams(*times)
with get_engine().connect() as conn:
    result = conn.execute(stmt, {k: v for k, v in params.items() if f":{k}" in stmt.text})
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))

st.title(st.session_state["floor_title"])
st.dataframe(frame, hide_index=True)
