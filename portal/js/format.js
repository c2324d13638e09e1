// Money arrives as decimal strings ("123.456789"): shown exactly as given, compared and summed
// with BigInt on the digits, never as floating point.

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

export function isDecimal(value) {
  return typeof value === "string" && DECIMAL.test(value);
}

// [BigInt units, scale] of a decimal string
function parse(value) {
  if (!isDecimal(value)) value = "0"; // a missing figure sorts as zero
  const [, sign, whole, fraction = ""] = DECIMAL.exec(value);
  return [BigInt(sign + whole + fraction), fraction.length];
}

function scaled(value, scale) {
  const [units, own] = parse(value);
  return units * 10n ** BigInt(scale - own);
}

export function compareDecimal(a, b) {
  const scale = Math.max(parse(a)[1], parse(b)[1]);
  const x = scaled(a, scale);
  const y = scaled(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function sumDecimals(values) {
  const scale = Math.max(0, ...values.map((v) => parse(v)[1]));
  let total = 0n;
  for (const v of values) total += scaled(v, scale);
  const negative = total < 0n;
  let digits = (negative ? -total : total).toString().padStart(scale + 1, "0");
  const text = scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits;
  return (negative ? "-" : "") + text;
}

// For drawing only (bar heights): a float is fine for pixels, never for the figures shown.
export function approx(value) {
  return isDecimal(value) ? Number(value) : Number(value) || 0;
}

export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

export function daysAgo(days, from = new Date()) {
  const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()));
  d.setUTCDate(d.getUTCDate() - days);
  return isoDay(d);
}

export function text(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
