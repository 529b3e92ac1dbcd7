import NIOCore
import PostgresNIO

/// A `CloudStackID` binds as the text it is, so SQL takes CloudStack's ids as they were listed.
extension CloudStackID: PostgresNonThrowingEncodable, PostgresArrayEncodable {
    public static var psqlType: PostgresDataType { String.psqlType }
    public static var psqlFormat: PostgresFormat { String.psqlFormat }
    public static var psqlArrayType: PostgresDataType { String.psqlArrayType }

    public func encode<JSONEncoder: PostgresJSONEncoder>(into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        value.encode(into: &byteBuffer, context: context)
    }
}
