/**
 * Credentials out of text that ends up in error messages and logs. A URL may carry a password
 * (`https://user:pass@host/`, `redis://:pass@host`), a bare token as user name
 * (`https://TOKEN@host/`) or a token in its query; none of them may be echoed back by
 * `slotgate check`, an error message or a log line. Runtime-neutral (no Node API), so the core's
 * error messages, the config schema and the Node logger share these two functions.
 */

/** Query parameters whose value is treated as a secret. */
const SECRET_PARAM = /token|secret|password|passwd|key|auth|signature|sig$/i;

/**
 * Replaces the userinfo of every URL-like part of `text` with `***`, whatever the text is (it need
 * not parse as a URL): `https://u:p@h/` → `https://***@h/`, `u:p@h:80` → `***@h:80`. The match
 * runs to the LAST `@` of the authority, so a password holding an unencoded `@` goes too. Plain
 * text without `@` is returned unchanged.
 */
export function redactCredentials(text: string): string {
  if (!text.includes("@")) return text;
  return text.replace(/\/\/[^\s/?#]*@/g, "//***@").replace(/^[^\s/?#]*@/, (m) => (m.startsWith("***@") ? m : "***@"));
}

/**
 * A URL for display: password (or a user name standing alone, which is often a token) and
 * token-like query values replaced by `***`: `redis://user:***@host:6379/0`. Text that does not
 * parse as a URL goes through {@link redactCredentials}.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return redactCredentials(url);
  }
  if (u.password) u.password = "***";
  else if (u.username) u.username = "***";
  for (const key of [...u.searchParams.keys()]) {
    if (SECRET_PARAM.test(key)) u.searchParams.set(key, "***");
  }
  // A string the URL parser accepts without an authority ("user:pass@host:80" reads as scheme
  // "user:") keeps its "@" in the path: the text rule covers that one.
  return u.host === "" ? redactCredentials(u.toString()) : u.toString();
}

/**
 * Text of an error made loggable: URL credentials blanked, and a keyed-limit value (the core names
 * scopes such as `frontend:web:apikey:<value>` in its messages, and the value is client input
 * such as an API key) cut off with the rest of its line, then the whole cut to `max`. The Node
 * logger and the Worker's log lines both pass error text through it.
 */
export function safeText(text: string, max = 500): string {
  const safe = redactCredentials(text).replace(/\b(frontend:[\w.-]+:[\w.-]+):[^\n]*/g, "$1:[key value not logged]");
  return safe.length > max ? `${safe.slice(0, max)}…` : safe;
}
