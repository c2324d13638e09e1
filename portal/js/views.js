// The portal's views. Each renders into `root` from the API's answers; every value goes in as
// text (dom.js), money exactly as the API wrote it (format.js).

import { barChart } from "./chart.js";
import { $, clear, h } from "./dom.js";
import { compareDecimal, daysAgo, isDecimal, text } from "./format.js";
import { all, api, download } from "./session.js";

const today = () => daysAgo(0);

function card(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

function failure(error) {
  // No such route (API Gateway answers 403 or 404 without the API's error code): a view
  // whose routes this deployment does not serve yet.
  const missing = error.code === null && (error.status === 403 || error.status === 404);
  let note = missing ? "Not available on this service yet." : error.message;
  if (error.code && !missing) note += ` (${error.code})`;
  return h("p", { class: "error", role: "alert" }, note);
}

// A table of items: columns [{key, label, num, cell(item) -> node|string}]
function table(id, items, columns) {
  if (!items.length) return h("p", { class: "empty", id }, "Nothing to show.");
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      { id },
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)))),
      h(
        "tbody",
        {},
        items.map((item) =>
          h(
            "tr",
            {},
            columns.map((c) =>
              h("td", { class: c.num ? "num" : null, dataset: { col: c.key } }, c.cell ? c.cell(item) : text(item[c.key])),
            ),
          ),
        ),
      ),
    ),
  );
}

// The columns of items of a shape this portal does not know in advance (CDRs, rates): the
// preferred ones first, then any other member, in the order first seen.
function columnsOf(items, preferred = []) {
  const seen = [];
  for (const item of items.slice(0, 50)) for (const key of Object.keys(item)) if (!seen.includes(key)) seen.push(key);
  const ordered = [...preferred.filter((k) => seen.includes(k)), ...seen.filter((k) => !preferred.includes(k))];
  return ordered.map((key) => ({
    key,
    label: key.replace(/_/g, " "),
    num: items.some((i) => isDecimal(i[key]) || typeof i[key] === "number"),
  }));
}

function field(label, input) {
  return h("label", {}, label, " ", input);
}

function dateInput(id, value) {
  return h("input", { type: "date", id, value, required: true });
}

async function accountChoice(ctx, id, onChange) {
  const accounts = (await all("/accounts")).filter((a) => a.kind !== "supplier");
  const chosen = ctx.selected || ctx.me.account || (accounts[0] && accounts[0].account);
  if (accounts.length <= 1) return { chosen, node: null };
  const select = h(
    "select",
    { id, onchange: (e) => onChange(e.target.value) },
    accounts.map((a) => h("option", { value: a.account, selected: a.account === chosen }, a.account)),
  );
  return { chosen, node: field("Account", select) };
}

function figure(id, label, value, currency) {
  return h(
    "div",
    { class: "figure" },
    h("div", { class: "label" }, label),
    h("div", {}, h("span", { class: "value", id }, value), h("span", { class: "currency" }, currency || "")),
  );
}

// --- dashboard -----------------------------------------------------------------------------

export async function dashboard(ctx, root) {
  root.dataset.ready = "false"; // until every figure below has its answer
  const { chosen, node } = await accountChoice(ctx, "account-picker", (account) => {
    ctx.selected = account;
    dashboard(ctx, root);
  });
  ctx.range = ctx.range || { from: daysAgo(29), to: today() };
  const from = dateInput("usage-from", ctx.range.from);
  const to = dateInput("usage-to", ctx.range.to);
  const figures = h("div", { class: "figures" });
  const usage = card("Usage by day");
  const top = card("Top destinations");
  const period = h(
    "form",
    {
      class: "toolbar",
      onsubmit: (e) => {
        e.preventDefault();
        ctx.range = { from: from.value, to: to.value };
        dashboard(ctx, root);
      },
    },
    node,
    field("From", from),
    field("To", to),
    h("button", { type: "submit", id: "usage-show" }, "Show"),
  );
  clear(root).append(period, card(`Account ${chosen || ""}`, figures), usage, top);
  if (chosen) {
    try {
      const id = encodeURIComponent(chosen);
      const [account, balance] = await Promise.all([api(`/accounts/${id}`), api(`/accounts/${id}/balance`)]);
      figures.append(
        figure("balance", "Balance", balance.balance, balance.currency),
        figure("reserved", "Reserved", balance.reserved, balance.currency),
        figure("credit-limit", "Credit limit", account.credit_limit, account.currency),
        figure("status", "Status", account.status, account.prepaid ? "prepaid" : "postpaid"),
      );
    } catch (error) {
      figures.append(failure(error));
    }
  }
  // The whole view by default; an account picked above: its own traffic.
  const range = { ...ctx.range, account: ctx.selected || undefined };
  try {
    const days = (await api("/usage", { query: { ...range, group_by: "day" } })).items;
    const currency = days[0] ? days[0].currency : "";
    const main = days.filter((d) => d.currency === currency);
    if (days.length) {
      const chart = barChart(main, { label: (d) => d.group, value: (d) => d.amount, tick: (d) => d.group.slice(5), caption: `amount per day, ${currency}` });
      chart.id = "usage-chart";
      usage.append(chart);
    }
    usage.append(usageTable("usage-table", days, "Day"));
  } catch (error) {
    usage.append(failure(error));
  }
  try {
    const destinations = (await api("/usage", { query: { ...range, group_by: "destination" } })).items;
    destinations.sort((a, b) => compareDecimal(b.amount, a.amount));
    top.append(usageTable("top-destinations", destinations.slice(0, 10), "Destination"));
  } catch (error) {
    top.append(failure(error));
  }
  root.dataset.ready = "true";
}

function usageTable(id, items, groupLabel) {
  const columns = [
    { key: "group", label: groupLabel },
    { key: "attempts", label: "Calls", num: true },
    { key: "answered", label: "Answered", num: true },
    { key: "minutes", label: "Minutes", num: true },
    { key: "asr", label: "ASR", num: true },
    { key: "acd", label: "ACD", num: true },
    { key: "amount", label: "Amount", num: true },
    { key: "currency", label: "" },
  ];
  if (items.some((i) => "margin" in i)) columns.push({ key: "margin", label: "Margin", num: true });
  return table(id, items, columns);
}

// --- customers and margin (resellers) ------------------------------------------------------

export async function customers(ctx, root) {
  const from = dateInput("customers-from", `${today().slice(0, 8)}01`);
  const to = dateInput("customers-to", today());
  const out = h("div");
  const load = async () => {
    root.dataset.ready = "false";
    clear(out).append(h("p", { class: "empty" }, "Loading…"));
    const accounts = (await all("/accounts")).filter((a) => a.account !== ctx.me.account && a.kind !== "supplier");
    const balances = new Map();
    await Promise.all(
      accounts.slice(0, 100).map(async (a) => {
        try {
          balances.set(a.account, await api(`/accounts/${encodeURIComponent(a.account)}/balance`));
        } catch {
          // one account's balance unavailable: its row shows none
        }
      }),
    );
    let usage = new Map();
    let usageError = null;
    try {
      const items = (await api("/usage", { query: { from: from.value, to: to.value, group_by: "account" } })).items;
      usage = new Map(items.map((i) => [i.group, i]));
    } catch (error) {
      usageError = error;
    }
    const u = (a, key) => text((usage.get(a.account) || {})[key]);
    clear(out).append(
      table("customers-table", accounts, [
        { key: "account", label: "Account" },
        { key: "parent", label: "Parent" },
        { key: "status", label: "Status" },
        { key: "prepaid", label: "Prepaid", cell: (a) => (a.prepaid ? "yes" : "no") },
        { key: "credit_limit", label: "Credit limit", num: true },
        { key: "balance", label: "Balance", num: true, cell: (a) => text((balances.get(a.account) || {}).balance) },
        { key: "currency", label: "" },
        { key: "minutes", label: "Minutes", num: true, cell: (a) => u(a, "minutes") },
        { key: "amount", label: "Billed", num: true, cell: (a) => u(a, "amount") },
        { key: "margin", label: "Margin", num: true, cell: (a) => u(a, "margin") },
      ]),
      usageError ? failure(usageError) : "",
    );
    root.dataset.ready = "true";
  };
  clear(root).append(
    card(
      "Customers and margin",
      h("form", { class: "toolbar", onsubmit: (e) => (e.preventDefault(), load()) }, field("From", from), field("To", to), h("button", { type: "submit" }, "Show")),
      out,
    ),
  );
  await load();
}

// --- CDR search and download ---------------------------------------------------------------

const CDR_COLUMNS = ["start", "start_time", "answer_time", "account", "caller", "callee", "destination", "prefix", "seconds", "billed_seconds", "duration", "rate", "amount", "currency"];

export async function cdrs(ctx, root) {
  const from = dateInput("cdr-from", daysAgo(6));
  const to = dateInput("cdr-to", today());
  const out = h("div", { id: "cdr-results" });
  const status = h("p", { class: "hint", id: "cdr-status", role: "status" });
  let items = [];
  let cursor = null;
  const render = () => {
    clear(out).append(
      table("cdr-table", items, columnsOf(items, CDR_COLUMNS)),
      cursor ? h("button", { type: "button", class: "secondary", id: "cdr-more", onclick: () => more() }, "More") : "",
    );
  };
  const more = async (fresh = false) => {
    if (fresh) [items, cursor] = [[], null];
    root.dataset.ready = "false";
    try {
      const page = await api("/cdrs", { query: { from: from.value, to: to.value, format: "json", cursor } });
      items = items.concat(page.items);
      cursor = page.next_cursor;
      render();
    } catch (error) {
      clear(out).append(failure(error));
    }
    root.dataset.ready = "true";
  };
  const save = async (button) => {
    button.disabled = true;
    status.textContent = "Preparing the file…";
    try {
      const name = await download("/cdrs", { from: from.value, to: to.value, format: "csv" }, `cdrs-${from.value}-${to.value}.csv`);
      status.textContent = `Downloaded ${name}.`;
    } catch (error) {
      clear(status).append(failure(error));
    } finally {
      button.disabled = false;
    }
  };
  clear(root).append(
    card(
      "Calls",
      h(
        "form",
        { class: "toolbar", onsubmit: (e) => (e.preventDefault(), more(true)) },
        field("From", from),
        field("To", to),
        h("button", { type: "submit", id: "cdr-search" }, "Search"),
        h("button", { type: "button", class: "secondary", id: "cdr-download", onclick: (e) => save(e.currentTarget) }, "Download CSV"),
      ),
      status,
      out,
    ),
  );
  await more(true);
}

// --- invoices and statement ----------------------------------------------------------------

export async function invoices(ctx, root) {
  const status = h("p", { class: "hint", id: "invoice-status", role: "status" });
  const list = h("div");
  const statement = h("div", { id: "statement" });
  clear(root).append(card("Invoices", status, list), card("Statement", statement));
  const fetchDocument = async (button, number, kind) => {
    button.disabled = true;
    try {
      const name = await download(`/invoices/${encodeURIComponent(number)}/${kind}`, {}, `${number}.${kind}`);
      status.textContent = `Downloaded ${name}.`;
    } catch (error) {
      clear(status).append(failure(error));
    } finally {
      button.disabled = false;
    }
  };
  try {
    const items = await all("/invoices");
    list.append(
      table("invoice-table", items, [
        { key: "number", label: "Number" },
        { key: "account", label: "Account" },
        { key: "issue_date", label: "Issued" },
        { key: "due_date", label: "Due" },
        { key: "total", label: "Total", num: true },
        { key: "currency", label: "" },
        { key: "status", label: "Status" },
        {
          key: "documents",
          label: "",
          cell: (i) =>
            (i.documents || []).map((kind) =>
              h("button", { type: "button", class: "secondary", dataset: { invoice: i.number, document: kind }, onclick: (e) => fetchDocument(e.currentTarget, i.number, kind) }, kind.toUpperCase()),
            ),
        },
      ]),
    );
  } catch (error) {
    list.append(failure(error));
  }
  await statementForm(ctx, statement);
}

async function statementForm(ctx, root) {
  const { chosen, node } = await accountChoice(ctx, "statement-account", (account) => {
    ctx.selected = account;
  });
  if (!chosen) return;
  const from = dateInput("statement-from", daysAgo(89));
  const to = dateInput("statement-to", today());
  const out = h("div");
  const load = async () => {
    const account = $("#statement-account", root)?.value || chosen;
    try {
      const answer = await api(`/accounts/${encodeURIComponent(account)}/statement`, { query: { from: from.value, to: to.value } });
      const rows = Object.entries(answer).filter(([, v]) => !Array.isArray(v));
      const lists = Object.entries(answer).filter(([, v]) => Array.isArray(v));
      clear(out).append(
        h("dl", { class: "figures" }, rows.map(([k, v]) => h("div", { class: "figure" }, h("dt", { class: "label" }, k.replace(/_/g, " ")), h("dd", { class: "value" }, text(v))))),
        lists.map(([k, v]) => [h("h3", {}, k.replace(/_/g, " ")), table(`statement-${k}`, v, columnsOf(v, ["date", "kind", "reference", "amount", "balance"]))]),
      );
    } catch (error) {
      clear(out).append(failure(error));
    }
  };
  root.append(
    h("form", { class: "toolbar", onsubmit: (e) => (e.preventDefault(), load()) }, node, field("From", from), field("To", to), h("button", { type: "submit" }, "Show")),
    out,
  );
}

// --- rates ---------------------------------------------------------------------------------

export async function rates(ctx, root) {
  const { chosen, node } = await accountChoice(ctx, "rates-account", (account) => {
    ctx.selected = account;
    rates(ctx, root);
  });
  root.dataset.ready = "false";
  const filter = h("input", { id: "rates-filter", placeholder: "prefix or destination" });
  const out = h("div");
  const heading = h("p", { class: "hint", id: "rates-of" });
  clear(root).append(card("Rates", h("div", { class: "toolbar" }, node, field("Find", filter)), heading, out));
  let items = [];
  const render = () => {
    const wanted = filter.value.trim().toLowerCase();
    const shown = wanted ? items.filter((r) => Object.values(r).some((v) => text(v).toLowerCase().includes(wanted))) : items;
    clear(out).append(table("rates-table", shown.slice(0, 500), columnsOf(items, ["prefix", "destination", "rate", "currency", "connect_fee", "increment", "minimum", "effective_from", "effective_to"])));
  };
  filter.addEventListener("input", render);
  try {
    const query = { account: chosen };
    const first = await api("/rates", { query });
    items = first.items;
    let cursor = first.next_cursor;
    while (cursor && items.length < 5000) {
      const page = await api("/rates", { query: { ...query, cursor } });
      items = items.concat(page.items);
      cursor = page.next_cursor;
    }
    heading.textContent = [first.account, first.currency, first.version ? `deck version ${first.version}` : ""].filter(Boolean).join(" · ");
    render();
  } catch (error) {
    out.append(failure(error));
  }
  root.dataset.ready = "true";
}
