import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a request whose method swift-nio's HTTP parser does not know at all (`FOO /health`) with 501
/// problem+json and `Allow`, instead of the bare 400 the parser's error would give, then closes the connection as
/// the parser requires. Methods the parser knows but a path does not serve are ``MethodsMiddleware``'s (405).
final class UnknownMethodHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    static let body = #"{"code":"method_not_implemented","detail":"This method is not one this server knows.","status":501,"title":"Not Implemented","type":"https://tessera.dev/problems/method-not-implemented"}"#

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, parserError == .invalidMethod else {
            context.fireErrorCaught(error)
            return
        }
        // The decoder closes the channel right after this returns: write now, synchronously.
        let body = ByteBuffer(string: Self.body)
        let head = HTTPResponse(
            status: .notImplemented,
            headerFields: [
                .contentType: "application/problem+json", .contentLength: "\(body.readableBytes)", .connection: "close",
                .allow: "DELETE, GET, HEAD, OPTIONS, POST",
            ]
        )
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(Self.wrapOutboundOut(.body(body)), promise: nil)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
        context.close(promise: nil)
    }
}
