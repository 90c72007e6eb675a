"""Stripe Elements' Card Element in a Streamlit components v2 component (runs in the page, no iframe).

Two uses, one component:
- `card_form`: the card field and a "Save card" button; confirms the given SetupIntent with Stripe.js
  (`confirmCardSetup`, which also walks the person through 3-D Secure) and reports
  `{kind: "setup", setupIntentId, status, paymentMethodId, error}`.
- `card_action`: for a PaymentIntent that needs the person (3-D Secure), runs `confirmCardPayment` once
  and reports `{kind: "action", paymentIntentId, status, error}`.

What the browser reports is only a hint: the page hands the id to the payments service, which reads the
intent from Stripe before saving a card or recording a payment. Stripe.js is loaded from
MARKETPLACE_STRIPE_JS_URL (Stripe's own by default; localstripe's in tests) with a `<script>` tag added
once per page. The card element and its state live on the component's DOM node, so a rerun neither
mounts it twice nor loses what was typed; the button is disabled while a confirmation runs, so a double
click sends one request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

HTML = """
<div class="mk-stripe">
  <div class="mk-card-field" data-testid="stripe-card-field"></div>
  <div class="mk-stripe-message" role="status"></div>
  <button class="mk-stripe-button" type="button">Save card</button>
</div>
"""

CSS = """
.mk-stripe { display: flex; flex-direction: column; gap: 0.6rem; max-width: 34rem; }
.mk-card-field { padding: 0.7rem; border: 1px solid rgba(128,128,128,0.45); border-radius: 0.5rem; background: #fff; }
.mk-card-field input { margin-right: 0.3rem; }
.mk-stripe-message { min-height: 1.2rem; font-size: 0.9rem; color: var(--st-text-color, inherit); }
.mk-stripe-message.mk-error { color: #c0392b; }
.mk-stripe-button { align-self: flex-start; padding: 0.45rem 1rem; border-radius: 0.5rem; cursor: pointer;
  border: 1px solid var(--st-primary-color, #ff4b4b); background: var(--st-primary-color, #ff4b4b); color: #fff; }
.mk-stripe-button:disabled { opacity: 0.6; cursor: progress; }
"""

JS = """
function loadStripe(url) {
  if (!window.__marketplaceStripeJs || window.__marketplaceStripeJsUrl !== url) {
    window.__marketplaceStripeJsUrl = url;
    window.__marketplaceStripeJs = new Promise((resolve, reject) => {
      if (typeof window.Stripe === 'function') { resolve(); return; }
      const tag = document.createElement('script');
      tag.src = url;
      tag.onload = () => resolve();
      tag.onerror = () => reject(new Error('Stripe.js could not be loaded from ' + url));
      document.head.appendChild(tag);
    });
  }
  return window.__marketplaceStripeJs;
}

function intentId(secret) {
  const m = /^((?:seti|pi)_[A-Za-z0-9]+)_secret_/.exec(secret || '');
  return m ? m[1] : null;
}

function errorText(err, fallback) {
  if (!err) return fallback;
  if (typeof err === 'string') return err;
  return err.message || fallback;
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const box = parentElement.querySelector('.mk-stripe');
  const field = box.querySelector('.mk-card-field');
  const message = box.querySelector('.mk-stripe-message');
  const button = box.querySelector('.mk-stripe-button');
  const state = box.__marketplace || (box.__marketplace = {});
  const say = (text, isError) => { message.textContent = text || ''; message.classList.toggle('mk-error', !!isError); };

  loadStripe(data.jsUrl).then(() => {
    if (!state.stripe || state.key !== data.publishableKey) {
      state.stripe = window.Stripe(data.publishableKey);
      state.key = data.publishableKey;
      state.card = null;
    }
    if (data.mode === 'setup') {
      field.style.display = '';
      button.style.display = '';
      button.textContent = data.buttonLabel || 'Save card';
      if (!state.card) {
        state.card = state.stripe.elements().create('card');
        state.card.mount(field);
      }
      state.secret = data.clientSecret;
      button.onclick = async () => {
        if (state.busy) return;
        state.busy = true;
        button.disabled = true;
        say('Checking the card with your bank…');
        try {
          const r = await state.stripe.confirmCardSetup(state.secret, { payment_method: { card: state.card } });
          if (r.error) {
            say(errorText(r.error, 'The card was not saved.'), true);
            setTriggerValue('result', { kind: 'setup', setupIntentId: intentId(state.secret), status: null,
                                        paymentMethodId: null, error: errorText(r.error, 'The card was not saved.') });
          } else {
            say('');
            const si = r.setupIntent || {};
            setTriggerValue('result', { kind: 'setup', setupIntentId: si.id || intentId(state.secret),
                                        status: si.status || null, paymentMethodId: si.payment_method || null,
                                        error: null });
          }
        } catch (e) {
          say(errorText(e, 'The card could not be checked.'), true);
        } finally {
          state.busy = false;
          button.disabled = false;
        }
      };
    } else {
      field.style.display = 'none';
      button.style.display = 'none';
      if (state.handled === data.clientSecret) return;
      state.handled = data.clientSecret;
      say('Your bank asks you to confirm this payment…');
      state.stripe.confirmCardPayment(data.clientSecret).then((r) => {
        const pi = r.paymentIntent || {};
        say(r.error ? errorText(r.error, 'The payment was not confirmed.') : '', !!r.error);
        setTriggerValue('result', { kind: 'action', paymentIntentId: pi.id || intentId(data.clientSecret),
                                    status: pi.status || null,
                                    error: r.error ? errorText(r.error, 'The payment was not confirmed.') : null });
      }).catch((e) => {
        say(errorText(e, 'The payment could not be confirmed.'), true);
        setTriggerValue('result', { kind: 'action', paymentIntentId: intentId(data.clientSecret), status: null,
                                    error: errorText(e, 'The payment could not be confirmed.') });
      });
    }
  }).catch((e) => say(errorText(e, 'Stripe.js could not be loaded.'), true));
}
"""

_card = st.components.v2.component("marketplace_stripe_card", html=HTML, css=CSS, js=JS, isolate_styles=False)


def _mount(key: str, data: dict[str, Any], on_result: Callable[[dict[str, Any]], None]) -> None:
    def changed() -> None:
        value = st.session_state.get(key)
        result = value.get("result") if isinstance(value, Mapping) else getattr(value, "result", None)
        if isinstance(result, Mapping):
            on_result(dict(result))

    _card(key=key, data=data, on_result_change=changed, height="content")


def card_form(
    *,
    key: str,
    publishable_key: str,
    js_url: str,
    client_secret: str,
    on_result: Callable[[dict[str, Any]], None],
    button_label: str = "Save card",
) -> None:
    """The Card Element and a save button that confirms `client_secret` (a SetupIntent); `on_result` gets
    the browser's report (run before the page's next script run)."""
    data = {
        "mode": "setup",
        "publishableKey": publishable_key,
        "jsUrl": js_url,
        "clientSecret": client_secret,
        "buttonLabel": button_label,
    }
    _mount(key, data, on_result)


def card_action(
    *, key: str, publishable_key: str, js_url: str, client_secret: str, on_result: Callable[[dict[str, Any]], None]
) -> None:
    """Run Stripe.js's confirmation (3-D Secure) for a PaymentIntent that requires action, once."""
    data = {"mode": "action", "publishableKey": publishable_key, "jsUrl": js_url, "clientSecret": client_secret}
    _mount(key, data, on_result)
