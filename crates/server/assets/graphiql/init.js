// Starts GraphiQL against this server's endpoint (same origin, so cookies
// and the page's own credentials apply; no external host is contacted).
(function () {
  var fetcher = GraphiQL.createFetcher({ url: "/tasker/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, { fetcher: fetcher }));
})();
