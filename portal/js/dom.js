// Building the page from data without ever parsing it as HTML: every value becomes a text node
// or a property, so a name like `<img onerror=…>` shows as those characters and runs nothing.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// h("td", {class: "num", dataset: {invoice: n}}, "text", otherNode)
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "href" && !/^(#|\/|https?:)/.test(String(value))) continue;  // no javascript:
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  return append(node, children);
}

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, String(value));
  }
  return append(node, children);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

export const $ = (selector, root = document) => root.querySelector(selector);
