// White label: the brand GET /v1/branding answers (the caller's reseller's, the tenant's or
// Tollgate's), applied as colours, name and logo. The last brand seen is remembered (brand
// only, never the key) so the sign-in page looks like the reseller's on the next visit.

import { $ } from "./dom.js";

const REMEMBERED = "tollgate.brand";
const COLOR = /^#[0-9a-fA-F]{6}$/;
const LOGO = /^data:image\/(png|jpeg);base64,[A-Za-z0-9+/]+={0,2}$/;

export function applyBrand(brand) {
  if (!brand || typeof brand.name !== "string") return;
  const root = document.documentElement;
  const colors = brand.colors || {};
  if (COLOR.test(colors.primary || "")) root.style.setProperty("--primary", colors.primary);
  if (COLOR.test(colors.accent || "")) root.style.setProperty("--accent", colors.accent);
  $("#brand-name").textContent = brand.name;
  $("#signin-brand").textContent = brand.name;
  document.title = `${brand.name} portal`;
  const logo = $("#brand-logo");
  if (typeof brand.logo === "string" && LOGO.test(brand.logo)) {
    logo.src = brand.logo;
    logo.alt = brand.name;
    logo.hidden = false;
  } else {
    logo.removeAttribute("src");
    logo.hidden = true;
  }
}

export function remember(brand) {
  try {
    localStorage.setItem(REMEMBERED, JSON.stringify(brand));
  } catch {
    // storage full or disabled: the sign-in page keeps the neutral look
  }
}

export function applyRemembered() {
  try {
    applyBrand(JSON.parse(localStorage.getItem(REMEMBERED) || "null"));
  } catch {
    localStorage.removeItem(REMEMBERED);
  }
}
