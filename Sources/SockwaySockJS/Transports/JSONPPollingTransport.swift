extension SockJSTransport {
    /// `GET /<server>/<session>/jsonp?c=callback`: long polling through a `<script>` element. The body
    /// starts with `/**/` so that it can never be read as a Flash policy file (the "Rosetta Flash" attack).
    public static let jsonpPolling = SockJSTransport(
        name: "jsonp-polling",
        pathSuffix: "jsonp",
        method: "GET",
        role: .receiver(.polling),
        contentType: "application/javascript; charset=UTF-8",
        wrapping: .jsonp,
        answersPreflight: false,
        cors: false,
        needsCallback: true
    )

    /// `POST /<server>/<session>/jsonp_send`: a form with a `d` field holding the JSON array (or the array
    /// itself as the body); answered `200 ok` because Konqueror mishandles `204`.
    public static let jsonpSend = SockJSTransport(
        name: "jsonp-send",
        pathSuffix: "jsonp_send",
        method: "POST",
        role: .sender(.jsonp),
        contentType: "text/plain; charset=UTF-8",
        wrapping: .jsonp,
        answersPreflight: false,
        cors: false,
        needsCallback: false
    )
}
