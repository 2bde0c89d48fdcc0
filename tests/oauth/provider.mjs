// oidc-provider (npm) on 127.0.0.1 for the OAuth2 tests: node provider.mjs PORT [ACCESS_TTL]
// Clients: goex-cli (public, PKCE, code + device + refresh, rotation), goex-service
// (client credentials), resource-server (introspection). The user interaction (login and
// consent) is completed at once for the account "alice": the tests' browser only follows
// redirects and submits the device forms.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const accessTtl = Number(process.argv[3] || 300);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'goex-cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      client_id: 'goex-service',
      client_secret: 'svc-secret-5d1e7a9c3b2f4e60',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'resource-server',
      client_secret: 'rs-secret-0a9b8c7d6e5f4a3b',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  scopes: ['openid', 'offline_access', 'repo'],
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      userCodeInputSource: async (ctx, form) => { ctx.body = `<html><body>${form}<input name="user_code"></body></html>`; },
      userCodeConfirmSource: async (ctx, form) => { ctx.body = `<html><body>${form}</body></html>`; },
      successSource: async (ctx) => { ctx.body = '<html><body>signed in</body></html>'; },
    },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
  },
  pkce: { required: () => true, methods: ['S256'] },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: accessTtl,
    ClientCredentials: accessTtl,
    RefreshToken: 3600,
    DeviceCode: 600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
    AuthorizationCode: 60,
  },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
});
provider.proxy = false;

provider.use(async (ctx, next) => {
  const found = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!found || ctx.method !== 'GET') return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: 'alice', clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope || 'openid'));
  const grantId = await grant.save();
  const result = { login: { accountId: 'alice' }, consent: { grantId } };
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.redirect(to);
});

provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
