import Foundation
import Hummingbird

/// JSON answers: `application/json`, keys sorted so answers are stable and diffable.
///
/// A value the encoder refuses (a stored `request` nested past its depth limit) is answered
/// `500 INTERNAL_ERROR` naming `subject` (the row), never `200` with a body of `null`.
enum JSONResponse {
    static func make(_ value: JSONValue, status: HTTPResponse.Status = .ok, subject: @autoclosure () -> String = "the answer") -> Response {
        do {
            return body(try value.encodedText(), status: status)
        } catch {
            return encodingFailure(subject(), error)
        }
    }

    /// A JSON array of `items`; when one cannot be encoded, the 500 names that one.
    static func array(_ items: [(value: JSONValue, subject: String)]) -> Response {
        do {
            return body(try JSONValue.array(items.map { $0.value }).encodedText(), status: .ok)
        } catch {
            // Only on failure: find the row at fault, so the operator knows which one to look at.
            for item in items {
                do { _ = try item.value.encodedText() } catch { return encodingFailure(item.subject, error) }
            }
            return encodingFailure("the list", error)
        }
    }

    private static func body(_ text: String, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    private static func encodingFailure(_ subject: String, _ error: any Error) -> Response {
        let message = "\(subject) could not be encoded as JSON (\(error)); its stored JSON is nested too deeply or holds "
            + "a value JSON cannot carry: inspect the row with SQL and correct it"
        let text = (try? JSONValue.object([
            "error": .string(message), "code": "INTERNAL_ERROR",
            "details": .object(["subject": .string(subject), "timestamp": .time(Date())]),
        ]).encodedText()) ?? #"{"error":"an answer could not be encoded as JSON","code":"INTERNAL_ERROR","details":{}}"#
        return body(text, status: .internalServerError)
    }
}
