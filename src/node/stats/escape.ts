/**
 * Escaping for the stats page. Scope names carry user input (a keyed limit's value is a header,
 * query parameter or path the client chose), so every string that reaches the page goes through
 * {@link html} (text and attribute values alike), and names are shown through {@link displayName}.
 */

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for an HTML text node or a double- or single-quoted attribute value. */
export function html(value: string | number): string {
  return String(value).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** Characters shown as escapes: C0/C1 controls, and bidi controls that could reorder the line. */
// \p{Cc} is exactly U+0000–001F and U+007F–009F.
const INVISIBLE = /[\p{Cc}\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/gu;

/** Makes control and bidi characters visible (`\n`, `\u202e`), so a key cannot disguise itself. */
export function visible(value: string): string {
  return value.replace(INVISIBLE, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}

export const MAX_DISPLAY_CHARS = 120;
/** A title attribute longer than this is cut too: a tooltip is no place for 10 kB. */
export const MAX_TITLE_CHARS = 2048;

/**
 * A name as HTML: control characters made visible, cut at {@link MAX_DISPLAY_CHARS} with an
 * ellipsis, and then the whole (visible) name in a `title` attribute so it can still be read.
 */
export function displayName(value: string, className = "name"): string {
  const shown = visible(value);
  if (shown.length <= MAX_DISPLAY_CHARS) return `<span class="${html(className)}">${html(shown)}</span>`;
  const title = shown.length > MAX_TITLE_CHARS ? `${cut(shown, MAX_TITLE_CHARS)}… (${value.length} chars)` : shown;
  return `<span class="${html(className)}" title="${html(title)}">${html(cut(shown, MAX_DISPLAY_CHARS))}…</span>`;
}

/** Cuts without splitting a surrogate pair. */
function cut(text: string, length: number): string {
  const code = text.charCodeAt(length - 1);
  return text.slice(0, code >= 0xd800 && code <= 0xdbff ? length - 1 : length);
}
