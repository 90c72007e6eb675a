"""One module per area (session, deployments, provider, operator, payments, agent), each exposing `router`.

`api.app.create_api` includes every module here that defines `router`, in name order.
"""
