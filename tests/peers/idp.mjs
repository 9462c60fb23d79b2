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
//   - RFC 9207 `iss` on the authorization response (oidc-provider's default) or, with
//     --no-iss, stripped from the redirect and from discovery, as Auth0 does.
//
// Usage: node idp.mjs --port 0 --redirect-uri URI [--redirect-uri URI ...] --jwks-file FILE
//        [--client-id ID] [--client-secret S | env IDP_CLIENT_SECRET] [--auth-method post|basic]
//        [--resource URI ...] [--no-iss] [--subject SUB] [--access-token-ttl SECONDS]
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
const authMethods = { post: 'client_secret_post', basic: 'client_secret_basic' };
const tokenEndpointAuthMethod = authMethods[opts['auth-method']];
if (!tokenEndpointAuthMethod) fail(`--auth-method must be one of ${Object.keys(authMethods)}`);

// The signing key outlives a restart of this process: verifiers cache JWKS by `kid`, so a
// fresh key per start would make a restarted IdP look like an attacker to them.
function loadOrCreateJwks(path) {
  if (fs.existsSync(path)) return JSON.parse(fs.readFileSync(path, 'utf8'));
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
  const jwks = { keys: [jwk] };
  fs.writeFileSync(path, JSON.stringify(jwks), { mode: 0o600 });
  return jwks;
}

const withIss = !opts['no-iss'];
const subject = opts.subject;
const redirectUris = opts['redirect-uri'];
const allowedResources = new Set(opts.resource);
const accessTokenTtl = Number.parseInt(opts['access-token-ttl'], 10);

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
    grant_types: ['authorization_code', 'refresh_token'],
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
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: false },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // No resource requested: an opaque token good for userinfo only, as with Auth0.
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        if (!allowedResources.has(resourceIndicator)) throw new errors.InvalidTarget();
        return {
          scope: opts['resource-scopes'],
          audience: resourceIndicator,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
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
  if (ctx.path === '/auth' && ctx.method === 'GET' && ctx.query.audience) {
    const query = { ...ctx.query };
    if (!query.resource) query.resource = query.audience;
    delete query.audience;
    ctx.query = query;
  }
  await next();
});

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

// Scripted login and consent: the test account signs in and approves whatever the client
// asked for. Each prompt is one GET on the interaction URL, answered with a redirect back to
// the authorization endpoint, so a browser that just follows redirects gets through.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
  if (!match || ctx.method !== 'GET') return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: subject } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    result = { error: 'access_denied', error_description: `unsupported prompt ${prompt.name}` };
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.status = 303;
  ctx.redirect(returnTo);
});

server.on('request', provider.callback());

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

process.stdout.write(`IDP READY ${issuer}\n`);
