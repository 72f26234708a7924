/**
 * Token check of the stats endpoints: `Authorization: Bearer <token>` (what Prometheus sends with
 * `authorization: { credentials: … }`) or `?token=<token>` (for a browser). Both sides are hashed
 * to SHA-256 first, so `timingSafeEqual` always compares equal-length buffers and the comparison
 * time says nothing about the token, not even its length.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";

export type TokenSource = "header" | "query";

export interface TokenChecker {
  /** Where a valid token came from, or null when none was valid (or none was given). */
  check(headers: IncomingHttpHeaders, query: URLSearchParams): TokenSource | null;
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

export function createTokenChecker(token: string): TokenChecker {
  const expected = digest(token);
  const matches = (candidate: string) => timingSafeEqual(digest(candidate), expected);
  return {
    check(headers, query) {
      const auth = headers.authorization;
      if (typeof auth === "string") {
        const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth);
        if (m && matches(m[1]!)) return "header";
      }
      const fromQuery = query.getAll("token");
      if (fromQuery.length === 1 && matches(fromQuery[0]!)) return "query";
      return null;
    },
  };
}
