// A signed-in journey written against the types openapi-typescript generates (defaults)
// from docs/openapi.json. tests/test_generated_clients.py generates ./api.d.ts next to a
// copy of this file and runs `tsc --noEmit --strict` on it: it only has to type-check.
// Each `@ts-expect-error` line is something the contract must refuse.
import type { components, paths } from "./api";

type Schemas = components["schemas"];
type Json<T> = T extends { content: { "application/json": infer Body } } ? Body : never;

type UserOut = Schemas["UserOut"];
type UserPatch = Schemas["UserPatch"];
type ProfileIn = Schemas["ProfileIn"];
type ProfileOut = Schemas["ProfileOut"];
type ErrorResponse = Schemas["ErrorResponse"];
type ValidationProblem = Schemas["HTTPValidationError"];

type PatchMe = paths["/users/me"]["patch"];
type PatchMeBody = Json<NonNullable<PatchMe["requestBody"]>>;
type PatchMeOk = Json<PatchMe["responses"][200]>;
type Unauthenticated = Json<paths["/users/me"]["get"]["responses"][401]>;
type AuthUnavailable = Json<paths["/users/me"]["get"]["responses"][503]>;
type Invalid = Json<PatchMe["responses"][422]>;
type Catalogue = Json<paths["/health-providers"]["get"]["responses"][200]>;
type ProviderParameter = paths["/health-providers/{provider}"]["get"]["parameters"]["path"];

async function call<T>(
  base: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const problem = (await response.json()) as ErrorResponse | ValidationProblem;
    throw new Error(typeof problem.detail === "string" ? problem.detail : "invalid request");
  }
  return (await response.json()) as T;
}

export async function journey(base: string, token: string): Promise<string> {
  const me = await call<UserOut>(base, token, "POST", "/users");

  // A response's time zone can be sent back: both are plain strings.
  const sameZone: UserPatch = { timezone: me.timezone };
  // Optional request fields may be left out; display_name alone may be null.
  const rename: PatchMeBody = { display_name: "Ana Runner", locale: "fr-FR" };
  const clear: UserPatch = { display_name: null };
  // @ts-expect-error units is one of the Units values
  const badUnits: UserPatch = { units: "furlongs" };
  // @ts-expect-error only display_name may be null
  const nullZone: UserPatch = { timezone: null };
  void [badUnits, nullZone, clear];

  const updated = await call<PatchMeOk>(base, token, "PATCH", "/users/me", rename);
  await call<PatchMeOk>(base, token, "PATCH", "/users/me", sameZone);
  const units: Schemas["Units"] = updated.units;

  // One named type per enum, shared by requests and responses.
  const profile: ProfileIn = { sport: "running", level: "beginner" };
  // @ts-expect-error sport and level are required
  const incomplete: ProfileIn = { weekly_hours: 4 };
  void incomplete;
  const created = await call<ProfileOut>(base, token, "POST", "/users_profiles", profile);
  const sport: Schemas["Sport"] = created.sport;
  const level: Schemas["Level"] = created.level;

  // Providers are one named type too, the same in every path that takes one.
  const garmin: Schemas["HealthProvider"] = "garmin";
  const parameter: ProviderParameter = { provider: garmin };
  // @ts-expect-error not a provider this deployment offers
  const unknown: Schemas["HealthProvider"] = "myspace";
  void unknown;
  const catalogue = await call<Catalogue>(base, token, "GET", "/health-providers");
  const names: Schemas["HealthProvider"][] = [parameter.provider];

  // Errors: {detail, code} everywhere, FastAPI's shape for 422.
  const expired: Unauthenticated = { detail: "This ID token has expired.", code: "token_expired" };
  const outage: AuthUnavailable = { detail: "Firebase is unreachable.", code: "auth_unavailable" };
  const invalid: Invalid = {
    detail: [{ loc: ["body", "timezone"], msg: "not a zone", type: "value_error", input: "Mars" }],
  };

  return [
    units,
    sport,
    level,
    names.join(","),
    String(catalogue.providers.length),
    expired.code,
    outage.code,
    String(invalid.detail?.length),
  ].join(" ");
}
