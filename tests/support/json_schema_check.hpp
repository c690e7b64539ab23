#pragma once
// Checks a JSON document against docs/atman.explanation.schema.json, for the
// tests of the library's JSON report and of the programs that write it.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace atman_test {

// The subset of JSON Schema (draft 7) that the schema uses; appends a message
// per violation, naming where it is (path "$" for the document).
inline void validate(const nlohmann::json& value, const nlohmann::json& schema, const std::string& path,
                     std::vector<std::string>& errors) {
    using nlohmann::json;
    const auto fail = [&](const std::string& what) { errors.push_back(path + ": " + what); };
    if (schema.contains("type")) {
        const std::string type = schema["type"];
        const bool ok = type == "object"    ? value.is_object()
                        : type == "array"   ? value.is_array()
                        : type == "string"  ? value.is_string()
                        : type == "boolean" ? value.is_boolean()
                        : type == "integer" ? value.is_number_integer()
                        : type == "number"  ? value.is_number()
                                            : false;
        if (!ok) return fail("is not of type " + type);
    }
    if (schema.contains("const") && value != schema["const"]) fail("differs from the const");
    if (schema.contains("enum") &&
        std::find(schema["enum"].begin(), schema["enum"].end(), value) == schema["enum"].end())
        fail("is not in the enum");
    if (schema.contains("minimum") && value.get<double>() < schema["minimum"].get<double>()) fail("below minimum");
    if (schema.contains("maximum") && value.get<double>() > schema["maximum"].get<double>()) fail("above maximum");
    if (schema.contains("minItems") && value.size() < schema["minItems"].get<std::size_t>()) fail("too few items");
    if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<std::size_t>()) fail("too many items");
    for (const json& name : schema.value("required", json::array()))
        if (!value.contains(name.get<std::string>())) fail("lacks required member " + name.get<std::string>());
    const json properties = schema.value("properties", json::object());
    for (const auto& [name, member_schema] : properties.items())
        if (value.contains(name)) validate(value[name], member_schema, path + "." + name, errors);
    if (schema.contains("items"))
        for (std::size_t i = 0; i < value.size(); ++i)
            validate(value[i], schema["items"], path + "[" + std::to_string(i) + "]", errors);
}

inline std::vector<std::string> schema_violations(const nlohmann::json& value, const nlohmann::json& schema) {
    std::vector<std::string> errors;
    validate(value, schema, "$", errors);
    return errors;
}

inline nlohmann::json explanation_schema() {
    // docs/ sits two levels above this file's directory (tests/support/),
    // however the include path spelled it.
    const std::filesystem::path here = std::filesystem::path(__FILE__).parent_path();
    std::ifstream file(here / ".." / ".." / "docs" / "atman.explanation.schema.json");
    REQUIRE(file);
    return nlohmann::json::parse(file);
}

}  // namespace atman_test
