// The OpenID provider of RAT's tests and benchmarks: the npm package
// oidc-provider (a certified OpenID Provider) on 127.0.0.1 and a free port,
// with confidential clients of the client_credentials grant whose JWT access
// tokens (ES256, audience and claims given) name a user and their roles.
// Written next to its node_modules and started by rat-testkit's `oidc`
// module (crates/rat-testkit/src/oidc.rs), which says more.
//
// argv[2]: JSON {audience, resource, access_token_ttl_secs,
//                clients: [{client_id, client_secret, claims}]}.
// Prints one JSON line {issuer, token_endpoint} on stdout once it serves, and
// nothing else there; logs every request to stderr. Exits when its stdin
// closes (the process that started it holds the other end, so that process's
// death, even by SIGKILL, closes it) or when it is given another parent.
import crypto from 'node:crypto';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const log = (...words) => console.error(new Date().toISOString(), ...words);

process.stdin.on('end', () => {
  log('stdin closed: the process that started this one is gone; exiting');
  process.exit(0);
});
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) {
    log(`parent ${parent} is gone; exiting`);
    process.exit(0);
  }
}, 1000).unref();

const config = JSON.parse(process.argv[2]);
const claimsOf = new Map(config.clients.map((c) => [c.client_id, c.claims]));

// A fresh ES256 signing key for each start: published in the JWKS, private
// here.
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `rat-test-${crypto.randomUUID()}`,
  alg: 'ES256',
  use: 'sig',
};

let handle = (req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = http.createServer((req, res) => handle(req, res));
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    jwks: { keys: [signingKey] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.resource,
        getResourceServerInfo: (ctx, indicator) => {
          if (indicator !== config.resource) {
            throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          }
          return {
            scope: 'api',
            audience: config.audience,
            accessTokenTTL: config.access_token_ttl_secs,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => claimsOf.get(token.clientId),
  });
  provider.use(async (ctx, next) => {
    await next();
    log(ctx.method, ctx.path, ctx.status);
  });
  for (const event of ['server_error', 'grant.error']) {
    provider.on(event, (ctx, error) => log(event, error));
  }
  handle = provider.callback();
  process.stdout.write(`${JSON.stringify({ issuer, token_endpoint: `${issuer}/token` })}\n`);
  log('serving as', issuer);
});
