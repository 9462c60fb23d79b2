// An Auth0-like identity provider for the integration tests, built on oidc-provider
// (OpenID Certified). It plays the IdP that operators already run and that the shim sits
// in front of:
//   - ONE static confidential client (client_secret_post or client_secret_basic), exact
//     redirect_uris, no registration endpoint (RFC 7591 is NOT offered);
//   - PKCE required, S256 only (RFC 7636; oidc-provider 9 knows no "plain");
//   - audience-bound JWT access tokens through resource indicators (RFC 8707, RFC 9068),
//     and Auth0's `audience` authorize parameter mapped onto `resource`;
//   - refresh tokens whenever the client may use the refresh_token grant (Auth0 issues them
//     for offline_access without a consent prompt);
//   - login and consent finished automatically for one fixed test account (no HTML, no
//     devInteractions): a cookie-keeping HTTP client that follows redirects logs in;
//     with --login-form, real HTML pages instead: a sign-in form (username and password of the
//     one test account) and an approval form, for tests that drive a real browser;
//   - RFC 9207 `iss` on the authorization response (oidc-provider's default) or, with
//     --no-iss, stripped from the redirect and from discovery, as Auth0 does;
//   - with --google-like, an IdP that behaves like Google instead: no resource indicators and
//     no `audience`, so every access token is OPAQUE and good only at its own userinfo
//     endpoint; no introspection endpoint; ID tokens for `openid`; refresh tokens for the
//     client; PKCE S256. The shim cannot verify such access tokens: it must issue its own;
//   - with --jwt-alg ALG (RS256, the default, PS256 or ES256), access tokens are signed with
//     that algorithm; a key for it is added to the JWKS file when it holds none;
//   - with --token-shape SHAPE, access tokens look like another IdP's (default `rfc9068`,
//     oidc-provider's own: `typ: at+jwt`, `scope` string, `client_id`, `aud` the resource):
//       `keycloak`: `typ: JWT` header, a `typ: "Bearer"` claim, `aud` an array of the resource
//         and "account", the client in `azp`; the resource is the default one, as an
//         "Audience" mapper makes it (Keycloak ignores `resource`/`audience` parameters);
//       `okta`: no `typ` header, `aud` "api://default" (the default authorization server's
//         audience: Okta ignores `resource`/`audience` parameters), scopes in `scp` (an
//         array), the client in `cid`, the user's id in `uid`, `ver: 1`;
//       `entra`: Entra ID v2's: `typ: JWT` header, `aud` the client ID, the client in `azp`,
//         `scp` the granted API scopes (`api://<client id>/<name>`, give them in
//         --resource-scopes) by their short names, space-separated, and no OpenID scope;
//         `ver: "2.0"`, `tid`, `oid`, `nbf`; and its JWKS, like Entra's, names no `alg`.
//
// Usage: node idp.mjs --port 0 --redirect-uri URI [--redirect-uri URI ...] --jwks-file FILE
//        [--client-id ID] [--client-secret S | env IDP_CLIENT_SECRET] [--auth-method post|basic]
//        [--resource URI ...] [--no-iss] [--subject SUB] [--access-token-ttl SECONDS]
//        [--login-form [--password P | env IDP_USER_PASSWORD]] [--google-like]
//        [--jwt-alg RS256|PS256|ES256] [--token-shape rfc9068|keycloak|okta|entra]
// Prints one line `IDP READY <issuer>` on stdout once it listens on 127.0.0.1.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'client-id': { type: 'string', default: process.env.IDP_CLIENT_ID ?? 'shim-upstream-client' },
    'client-secret': { type: 'string', default: process.env.IDP_CLIENT_SECRET },
    'auth-method': { type: 'string', default: 'post' },
    'redirect-uri': { type: 'string', multiple: true, default: [] },
    resource: { type: 'string', multiple: true, default: [] },
    'resource-scopes': { type: 'string', default: 'openid profile email offline_access' },
    'jwks-file': { type: 'string' },
    'no-iss': { type: 'boolean', default: false },
    subject: { type: 'string', default: 'test-user-1' },
    'access-token-ttl': { type: 'string', default: '600' },
    'login-form': { type: 'boolean', default: false },
    password: { type: 'string', default: process.env.IDP_USER_PASSWORD },
    'google-like': { type: 'boolean', default: false },
    'client-credentials': { type: 'boolean', default: false },
    'jwt-alg': { type: 'string', default: 'RS256' },
    'token-shape': { type: 'string', default: 'rfc9068' },
  },
  strict: true,
});

function fail(message) {
  process.stderr.write(`idp: ${message}\n`);
  process.exit(2);
}

if (!opts['client-secret']) fail('a client secret is required (--client-secret or IDP_CLIENT_SECRET)');
if (opts['redirect-uri'].length === 0) fail('at least one --redirect-uri is required');
if (!opts['jwks-file']) fail('--jwks-file is required');
if (opts['login-form'] && !opts.password) fail('--login-form needs a password (--password or IDP_USER_PASSWORD)');
const authMethods = { post: 'client_secret_post', basic: 'client_secret_basic' };
const tokenEndpointAuthMethod = authMethods[opts['auth-method']];
if (!tokenEndpointAuthMethod) fail(`--auth-method must be one of ${Object.keys(authMethods)}`);
// The key type each supported access token signing algorithm needs (RFC 7518 §3.1).
const keyTypes = {
  RS256: ['rsa', { modulusLength: 2048 }],
  PS256: ['rsa', { modulusLength: 2048 }],
  ES256: ['ec', { namedCurve: 'P-256' }],
};
const jwtAlg = opts['jwt-alg'];
if (!keyTypes[jwtAlg]) fail(`--jwt-alg must be one of ${Object.keys(keyTypes)}`);
const tokenShape = opts['token-shape'];
if (!['rfc9068', 'keycloak', 'okta', 'entra'].includes(tokenShape)) fail('--token-shape must be rfc9068, keycloak, okta or entra');

// The signing key outlives a restart of this process: verifiers cache JWKS by `kid`, so a
// fresh key per start would make a restarted IdP look like an attacker to them.
// RS256 signs the ID tokens, so its key is always there; another access token algorithm
// gets its own key next to it.
function loadOrCreateJwks(path) {
  const jwks = fs.existsSync(path) ? JSON.parse(fs.readFileSync(path, 'utf8')) : { keys: [] };
  const missing = ['RS256', jwtAlg].filter((alg) => !jwks.keys.some((key) => key.alg === alg));
  if (missing.length === 0) return jwks;
  for (const alg of new Set(missing)) {
    const { privateKey } = crypto.generateKeyPairSync(...keyTypes[alg]);
    jwks.keys.push({ ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg, use: 'sig' });
  }
  fs.writeFileSync(path, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}

// --token-shape: rewrite oidc-provider's RFC 9068 access token into another IdP's shape.
const tokenShapes = {
  rfc9068: () => {},
  keycloak: (token, { header, payload }) => {
    Object.assign(header, { typ: 'JWT' });
    payload.typ = 'Bearer';
    payload.azp = payload.client_id;
    payload.aud = [payload.aud, 'account'];
    delete payload.client_id;
  },
  okta: (token, { header, payload }) => {
    Object.assign(header, { typ: undefined });
    payload.aud = 'api://default';
    payload.ver = 1;
    payload.cid = payload.client_id;
    payload.uid = token.accountId;
    payload.scp = String(payload.scope ?? '').split(' ').filter(Boolean);
    delete payload.client_id;
    delete payload.scope;
  },
  entra: (token, { header, payload }) => {
    Object.assign(header, { typ: 'JWT' });
    Object.assign(payload, { ver: '2.0', tid: entraTenant, oid: payload.sub, aud: payload.client_id, nbf: payload.iat });
    const apiPrefix = `api://${payload.client_id}/`;
    payload.azp = payload.client_id;
    payload.scp = String(payload.scope ?? '').split(' ').filter((scope) => scope.startsWith(apiPrefix))
      .map((scope) => scope.slice(apiPrefix.length)).join(' ');
    delete payload.client_id;
    delete payload.scope;
  },
};
// --token-shape entra: the tenant ID its tokens name (any fixed GUID).
const entraTenant = '9188040d-6c67-4c5b-b112-36a304b66dad';

const withIss = !opts['no-iss'];
const subject = opts.subject;
// --login-form: the one account's username (tests/peers/idp.py LOGIN_USERNAME).
const loginUsername = 'tester';
const redirectUris = opts['redirect-uri'];
const allowedResources = new Set(opts.resource);
const accessTokenTtl = Number.parseInt(opts['access-token-ttl'], 10);
const googleLike = opts['google-like'];
// --client-credentials: the one client may also use RFC 6749 §4.4 (machine tokens, `sub` = client).
const clientCredentials = opts['client-credentials'];

// The issuer must embed the port, and port 0 asks the kernel for a free one: listen first,
// then build the provider around the address we got. No port race with other tests.
const server = http.createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(Number.parseInt(opts.port, 10), '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: opts['client-id'],
    client_secret: opts['client-secret'],
    redirect_uris: redirectUris,
    grant_types: ['authorization_code', 'refresh_token', ...(clientCredentials ? ['client_credentials'] : [])],
    response_types: ['code'],
    token_endpoint_auth_method: tokenEndpointAuthMethod,
  }],
  jwks: loadOrCreateJwks(opts['jwks-file']),
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  findAccount: async (_ctx, accountId) => ({
    accountId,
    claims: async () => ({
      sub: accountId,
      name: 'Test User',
      preferred_username: 'tester',
      email: 'tester@example.test',
      email_verified: true,
    }),
  }),
  // PKCE on every authorization request, confidential client or not (RFC 9700 §2.1.1).
  pkce: { required: () => true },
  // Google's ID tokens carry the e-mail and profile claims the scopes asked for; oidc-provider
  // by default keeps them for userinfo when an access token is issued too (Core §5.4).
  conformIdTokenClaims: !googleLike,
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: false },
    revocation: { enabled: true },
    clientCredentials: { enabled: clientCredentials },
    introspection: { enabled: false },
    userinfo: { enabled: true },
    // --google-like: no resource indicators at all, so access tokens stay opaque (userinfo only).
    resourceIndicators: googleLike ? { enabled: false } : {
      enabled: true,
      // No resource requested: an opaque token good for userinfo only, as with Auth0; IdPs
      // that ignore the parameter (Keycloak, Okta) mint for their configured audience.
      defaultResource: () => (tokenShape === 'rfc9068' ? undefined : opts.resource[0]),
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        if (!allowedResources.has(resourceIndicator)) throw new errors.InvalidTarget();
        return {
          scope: opts['resource-scopes'],
          audience: resourceIndicator,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: jwtAlg } },
        };
      },
    },
  },
  // Auth0 hands out a refresh token whenever offline_access was asked for and the client
  // may refresh; oidc-provider would otherwise also demand prompt=consent.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 86400,
  },
  rotateRefreshToken: true,
  formats: {
    customizers: {
      jwt: async (_ctx, token, structured) => {
        structured.header ??= {};
        tokenShapes[tokenShape](token, structured);
      },
    },
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// Request log on stderr: method, path, status only (no query: it carries codes and state).
provider.use(async (ctx, next) => {
  await next();
  process.stderr.write(`idp: ${ctx.method} ${ctx.path} -> ${ctx.status}\n`);
});

// Auth0 accepts only the client authentication method configured for the application;
// oidc-provider takes any secret-based one. Enforce the registered one (RFC 6749 §2.3.1).
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ['/token', '/token/revocation'].includes(ctx.path)) {
    const sentBasic = /^basic /i.test(ctx.get('authorization'));
    if (sentBasic !== (tokenEndpointAuthMethod === 'client_secret_basic')) {
      ctx.status = 401;
      ctx.body = {
        error: 'invalid_client',
        error_description: `client authentication must use ${tokenEndpointAuthMethod}`,
      };
      return;
    }
  }
  await next();
});

// Auth0's `audience` authorize parameter is RFC 8707's `resource` under another name.
provider.use(async (ctx, next) => {
  if (!googleLike && ctx.path === '/auth' && ctx.method === 'GET' && ctx.query.audience) {
    const query = { ...ctx.query };
    if (!query.resource) query.resource = query.audience;
    delete query.audience;
    ctx.query = query;
  }
  await next();
});

// --token-shape entra: Entra ID's JWKS names no `alg` on its keys; verifiers match by `kid`/`kty`.
if (tokenShape === 'entra') {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/jwks' && Array.isArray(ctx.body?.keys)) {
      ctx.body = { keys: ctx.body.keys.map(({ alg: _alg, ...key }) => key) };
    }
  });
}

// --no-iss: behave like an IdP without RFC 9207 (Auth0): no `iss` on the redirect back to
// the client, and no claim of support in discovery.
if (!withIss) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/.well-known/openid-configuration' && ctx.body && typeof ctx.body === 'object') {
      delete ctx.body.authorization_response_iss_parameter_supported;
    }
    const location = ctx.response.get('Location');
    if (location && ctx.status >= 300 && ctx.status < 400) {
      const url = new URL(location, issuer);
      if (redirectUris.includes(`${url.origin}${url.pathname}`) && url.searchParams.has('iss')) {
        url.searchParams.delete('iss');
        ctx.set('Location', url.href);
      }
    }
  });
}

// The test account grants whatever the client asked for that is still missing.
async function consentGrant(details) {
  const { prompt, params, session } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  const missing = prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

// Scripted login and consent: the test account signs in and approves whatever the client
// asked for. Each prompt is one GET on the interaction URL, answered with a redirect back to
// the authorization endpoint, so a browser that just follows redirects gets through.
function scriptedInteractions() {
  provider.use(async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (!match || ctx.method !== 'GET') return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt } = details;
    let result;
    if (prompt.name === 'login') {
      result = { login: { accountId: subject } };
    } else if (prompt.name === 'consent') {
      result = { consent: { grantId: await consentGrant(details) } };
    } else {
      result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(returnTo);
  });
}

// --login-form: the same account behind real HTML, as a user meets it at an IdP. GET on the
// interaction URL shows the page for the current prompt: a sign-in form (username, password)
// or an approval form; the POST checks the password (a wrong one shows the form again with
// an error, status 401) and finishes the prompt with a 303 back to the authorization endpoint.
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:24rem;margin:3rem auto;padding:0 1rem;color:#111}
label{display:block;margin-top:1rem}input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font-size:1rem}
button{margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem}.error{color:#a00000}
</style></head><body><main><h1>${escapeHtml(title)}</h1>${body}</main></body></html>`;
}

function loginPage(uid, clientId, error) {
  return page('Sign in to the test IdP', `
<p>Application <code>${escapeHtml(clientId)}</code> asks you to sign in.</p>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label for="username">Username</label><input id="username" name="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
</form>`);
}

function consentPage(uid, clientId, scopes) {
  return page('Authorize the application', `
<p>Application <code>${escapeHtml(clientId)}</code> asks for: ${escapeHtml(scopes.join(' ') || 'sign-in')}.</p>
<form method="post" action="/interaction/${escapeHtml(uid)}/confirm">
<button type="submit">Continue</button>
</form>`);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16 * 1024) throw new errors.InvalidRequest('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginFormInteractions() {
  provider.use(async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)(?:\/(login|confirm))?$/.exec(ctx.path);
    if (!match) return next();
    const [, uid, action] = match;
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) throw new errors.InvalidRequest('interaction mismatch');
    const { prompt, params } = details;
    ctx.set('Cache-Control', 'no-store');
    if (ctx.method === 'GET' && !action) {
      ctx.type = 'html';
      ctx.body = prompt.name === 'login'
        ? loginPage(uid, params.client_id)
        : consentPage(uid, params.client_id, String(params.scope ?? '').split(' ').filter(Boolean));
      return;
    }
    if (ctx.method !== 'POST' || !action) return next();
    let result;
    if (action === 'login' && prompt.name === 'login') {
      const form = await readForm(ctx.req);
      if (form.get('username') !== loginUsername || form.get('password') !== opts.password) {
        ctx.status = 401;
        ctx.type = 'html';
        ctx.body = loginPage(uid, params.client_id, 'Wrong username or password.');
        return;
      }
      result = { login: { accountId: subject } };
    } else if (action === 'confirm' && prompt.name === 'consent') {
      result = { consent: { grantId: await consentGrant(details) } };
    } else {
      throw new errors.InvalidRequest(`no ${action} step for the ${prompt.name} prompt`);
    }
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.status = 303;
    ctx.redirect(returnTo);
  });
}

if (opts['login-form']) loginFormInteractions();
else scriptedInteractions();

server.on('request', provider.callback());

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

process.stdout.write(`IDP READY ${issuer}\n`);
