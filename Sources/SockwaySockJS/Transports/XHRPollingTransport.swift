extension SockJSTransport {
    /// `POST /<server>/<session>/xhr`: long polling; each response carries one frame followed by `\n`.
    public static let xhrPolling = SockJSTransport(
        name: "xhr-polling",
        pathSuffix: "xhr",
        method: "POST",
        role: .receiver(.polling),
        contentType: "application/javascript; charset=UTF-8",
        wrapping: .newline,
        answersPreflight: true,
        cors: true,
        needsCallback: false
    )
}
