extension SockJSTransport {
    /// `GET /<server>/<session>/eventsource`: Server-Sent Events, one `data:` event per frame. The
    /// response starts with an empty line because Opera once dropped the first event otherwise.
    public static let eventSource = SockJSTransport(
        name: "eventsource",
        pathSuffix: "eventsource",
        method: "GET",
        role: .receiver(.streaming),
        contentType: "text/event-stream",
        wrapping: .eventSource,
        answersPreflight: false,
        cors: true,
        needsCallback: false
    )
}
