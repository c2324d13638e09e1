// The portal's shell: sign-in, the brand, the navigation between views (#/dashboard, ...).

import { applyBrand, applyRemembered, remember } from "./brand.js";
import { $, clear, h } from "./dom.js";
import { api, session, signInWithKey, signInWithPassword, signOut, whenUnauthorized } from "./session.js";
import * as views from "./views.js";

const ctx = { me: null, account: null, selected: null };
const VIEWS = ["dashboard", "customers", "cdrs", "invoices", "rates"];

function showSignIn(message) {
  ctx.me = null;
  for (const id of ["#nav", "#who", "#view"]) $(id).hidden = true;
  $("#sign-in").hidden = false;
  const error = $("#signin-error");
  error.textContent = message || "";
  error.hidden = !message;
  $("#api-key").value = "";
  $("#api-key").focus();
}

function resells() {
  return ctx.me.account === null || (ctx.account && ctx.account.kind === "reseller");
}

async function enter(me) {
  ctx.me = me;
  ctx.selected = null;
  ctx.account = me.account ? await api(`/accounts/${encodeURIComponent(me.account)}`).catch(() => null) : null;
  try {
    const brand = await api("/branding");
    applyBrand(brand);
    remember(brand);
  } catch {
    // the brand is decoration: the portal works without it
  }
  $("#whoami").textContent = me.account ? `${me.account} (${me.role})` : `${me.tenant} (${me.role})`;
  $('#nav a[data-view="customers"]').hidden = !resells();
  $("#sign-in").hidden = true;
  for (const id of ["#nav", "#who", "#view"]) $(id).hidden = false;
  if (!location.hash || location.hash === "#/") location.hash = "#/dashboard";
  else route();
}

async function route() {
  if (!ctx.me) return;
  let name = location.hash.replace(/^#\//, "").split("?")[0];
  if (!VIEWS.includes(name) || (name === "customers" && !resells())) name = "dashboard";
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("current", link.dataset.view === name);
  const root = $("#view");
  root.dataset.view = name;
  root.dataset.ready = "false";
  clear(root).append(h("p", { class: "empty" }, "Loading…"));
  try {
    await views[name](ctx, root);
  } catch (error) {
    clear(root).append(h("p", { class: "error", role: "alert" }, `${error.message}`));
  }
  root.dataset.ready = "true"; // the view has every answer it asked for (tests wait on it)
}

async function trySignIn(form, attempt) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await enter(await attempt());
  } catch (error) {
    signOut();
    const unavailable = error.code === null && [403, 404, 405].includes(error.status);
    showSignIn(unavailable ? "This sign-in is not available here: use an API key." : `Sign-in refused: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

function start() {
  applyRemembered();
  whenUnauthorized(() => {
    signOut();
    showSignIn("Your session has ended: sign in again.");
  });
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    trySignIn(event.currentTarget, () => signInWithKey(key));
  });
  $("#password-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    trySignIn(form, () => signInWithPassword(form.user.value, form.password.value, form.totp.value));
  });
  $("#sign-out").addEventListener("click", () => {
    signOut();
    location.hash = "";
    showSignIn();
  });
  window.addEventListener("hashchange", route);
  if (session.bearer) {
    api("/me")
      .then(enter)
      .catch(() => {
        signOut();
        showSignIn();
      });
  } else {
    showSignIn();
  }
}

start();
