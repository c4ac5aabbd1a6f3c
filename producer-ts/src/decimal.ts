/**
 * Exact decimal arithmetic on BigInt, just what scoring needs to agree with Python's
 * `decimal` module digit for digit (binary floating point would round 0.705 down).
 */

/** `units * 10 ** -scale`. */
export interface Dec {
  readonly units: bigint;
  readonly scale: number;
}

const DECIMAL_TEXT = /^\s*([+-])?(\d+)?(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/;

function pow10(n: number): bigint {
  return 10n ** BigInt(n);
}

/** A decimal from its text (as Python's `Decimal(str)` reads it), or null. */
export function parseDecimal(text: string): Dec | null {
  const match = DECIMAL_TEXT.exec(text.replaceAll("_", ""));
  if (!match) return null;
  const [, sign, whole = "", fraction = "", exponent = "0"] = match;
  if (whole === "" && fraction === "") return null;
  const exp = Number(exponent);
  if (!Number.isSafeInteger(exp) || Math.abs(exp) > 1000) return null;
  let units = BigInt((whole || "0") + fraction);
  if (sign === "-") units = -units;
  let scale = fraction.length - exp;
  if (scale < 0) {
    units *= pow10(-scale);
    scale = 0;
  }
  return { units, scale };
}

/** A JavaScript number as the decimal its shortest text form names (like Python's repr). */
export function decimalFromNumber(value: number): Dec | null {
  if (!Number.isFinite(value)) return null;
  return parseDecimal(String(value));
}

function align(a: Dec, b: Dec): [bigint, bigint, number] {
  if (a.scale === b.scale) return [a.units, b.units, a.scale];
  if (a.scale > b.scale) return [a.units, b.units * pow10(a.scale - b.scale), a.scale];
  return [a.units * pow10(b.scale - a.scale), b.units, b.scale];
}

export function add(a: Dec, b: Dec): Dec {
  const [x, y, scale] = align(a, b);
  return { units: x + y, scale };
}

export function multiply(a: Dec, b: Dec): Dec {
  return { units: a.units * b.units, scale: a.scale + b.scale };
}

export function compare(a: Dec, b: Dec): number {
  const [x, y] = align(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export const ZERO: Dec = { units: 0n, scale: 0 };

/** `numerator / denominator` rounded to an integer, halves away from zero (positive operands). */
function divideHalfUp(numerator: bigint, denominator: bigint): bigint {
  const quotient = numerator / denominator;
  const remainder = numerator % denominator;
  return remainder * 2n >= denominator ? quotient + 1n : quotient;
}

function divideHalfEven(numerator: bigint, denominator: bigint): bigint {
  const quotient = numerator / denominator;
  const twice = (numerator % denominator) * 2n;
  if (twice > denominator || (twice === denominator && quotient % 2n === 1n)) return quotient + 1n;
  return quotient;
}

/**
 * `a / b` rounded half up to `places` decimals, both non-negative, b > 0.
 *
 * Python divides to 28 significant digits (half even) before `quantize` rounds half up;
 * doing the same keeps the rare result whose 29th digit decides the cent identical.
 */
export function divideRounded(a: Dec, b: Dec, places: number): Dec {
  // a / b = p / q exactly.
  const p = a.units * pow10(b.scale);
  const q = b.units * pow10(a.scale);
  if (p === 0n) return { units: 0n, scale: places };
  // e: 10**e <= p/q < 10**(e+1)
  let e = p.toString().length - q.toString().length;
  if (e >= 0 ? p < q * pow10(e) : p * pow10(-e) < q) e -= 1;
  const shift = 27 - e; // N = p/q * 10**shift has 28 digits
  const n = shift >= 0 ? divideHalfEven(p * pow10(shift), q) : divideHalfEven(p, q * pow10(-shift));
  // value = n * 10**-shift; to `places` decimals:
  const drop = shift - places;
  const units = drop <= 0 ? n * pow10(-drop) : divideHalfUp(n, pow10(drop));
  return { units, scale: places };
}

/** The decimal's text, keeping its scale ("0.70" stays "0.70"). */
export function formatDecimal(value: Dec): string {
  const negative = value.units < 0n;
  let digits = (negative ? -value.units : value.units).toString();
  if (value.scale > 0) {
    digits = digits.padStart(value.scale + 1, "0");
    digits = `${digits.slice(0, -value.scale)}.${digits.slice(-value.scale)}`;
  }
  return negative ? `-${digits}` : digits;
}
