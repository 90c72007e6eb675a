"""The Streamlit UI script: who is this, which pages may they see. (streamlit_app.py serves it.)"""

import streamlit as st

from dashboard import identity, navigation
from services.bootstrap import prepare_database

st.set_page_config(page_title="Cloud Marketplace", page_icon=":material/cloud:", layout="wide")
prepare_database(demo=identity.demo_mode())  # once per process; a no-op afterwards
me = identity.resolve()
extra = []
if not me.is_demo:
    extra.append(
        ("Account", [st.Page(lambda: st.logout(), title="Sign out", icon=":material/logout:", url_path="sign-out")])
    )
navigation.build(me, extra=extra).run()
