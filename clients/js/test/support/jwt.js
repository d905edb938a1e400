// HS256 tokens for the nodes started with ROOKERY_AUTH=jwt.

import { createHmac } from "node:crypto";

const base64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** A token for `sub` valid `seconds` from now. */
export function sign(secret, sub, seconds = 3600, claims = {}) {
  const head = base64url({ alg: "HS256", typ: "JWT" });
  const body = base64url({ sub, exp: Math.floor(Date.now() / 1000) + seconds, ...claims });
  const mac = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${mac}`;
}
