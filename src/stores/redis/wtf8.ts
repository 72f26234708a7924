/**
 * Scope names are arbitrary JavaScript strings, and JavaScript strings may hold lone surrogates
 * (`"\uD800"`), which UTF-8 cannot express: Node would turn each into U+FFFD, so two different
 * keys could share one counter in Redis. WTF-8 is UTF-8 extended to encode lone surrogates as the
 * 3-byte sequence they would have had, which keeps the mapping one-to-one. Well-formed strings
 * encode exactly as UTF-8, so Redis sees ordinary text for every ordinary name.
 */

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when the string holds a lone surrogate (String#isWellFormed is ES2024). */
export function needsWtf8(s: string): boolean {
  return LONE_SURROGATE.test(s);
}

/** The string as bytes; a well-formed string is returned as is (ioredis writes it as UTF-8). */
export function toWire(s: string): string | Buffer {
  return needsWtf8(s) ? wtf8Encode(s) : s;
}

export function wtf8Encode(s: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (next - 0xdc00);
        i++;
      }
    }
    if (cp < 0x80) bytes.push(cp);
    else if (cp < 0x800) bytes.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) bytes.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else bytes.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return Buffer.from(bytes);
}

/** Inverse of {@link wtf8Encode}; bytes that are not WTF-8 become U+FFFD. */
export function wtf8Decode(buf: Buffer): string {
  let out = "";
  let i = 0;
  const n = buf.length;
  const cont = (k: number) => k < n && (buf[k]! & 0xc0) === 0x80;
  while (i < n) {
    const b = buf[i]!;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
    } else if (b >= 0xc2 && b < 0xe0 && cont(i + 1)) {
      out += String.fromCharCode(((b & 0x1f) << 6) | (buf[i + 1]! & 0x3f));
      i += 2;
    } else if (b >= 0xe0 && b < 0xf0 && cont(i + 1) && cont(i + 2)) {
      const cp = ((b & 0x0f) << 12) | ((buf[i + 1]! & 0x3f) << 6) | (buf[i + 2]! & 0x3f);
      out += cp >= 0x800 ? String.fromCharCode(cp) : "\uFFFD";
      i += 3;
    } else if (b >= 0xf0 && b < 0xf5 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      const cp = ((b & 0x07) << 18) | ((buf[i + 1]! & 0x3f) << 12) | ((buf[i + 2]! & 0x3f) << 6) | (buf[i + 3]! & 0x3f);
      out += cp >= 0x10000 && cp <= 0x10ffff ? String.fromCodePoint(cp) : "\uFFFD";
      i += 4;
    } else {
      out += "\uFFFD";
      i++;
    }
  }
  return out;
}
