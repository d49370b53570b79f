extension SockJSTransport {
    /// `POST /<server>/<session>/xhr_send`: the body is a JSON array of messages; answered `204` with a
    /// `text/plain` content type (Firefox otherwise treats the empty body as XML and complains).
    public static let xhrSend = SockJSTransport(
        name: "xhr-send",
        pathSuffix: "xhr_send",
        method: "POST",
        role: .sender(.xhr),
        contentType: "text/plain; charset=UTF-8",
        wrapping: .newline,
        answersPreflight: true,
        cors: true,
        needsCallback: false
    )
}
