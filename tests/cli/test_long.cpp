// atman-long on the default model, on one short document of three paragraphs:
// exhaustive scores written with --write-exhaustive and read back with
// --exhaustive-scores give the same comparison as running them, an unlimited
// search agrees with the exhaustive one, each --rank is a run of its own, and
// a scores file of another model or without the method is refused.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/default_model.hpp"
#include "support/run_program.hpp"

using nlohmann::json;
using atman_test::run_program;

namespace {

const atman_test::scratch_dir& scratch() {
    static const atman_test::scratch_dir dir("atman-cli-long");
    return dir;
}

std::string document_file() {
    static const std::string path = [] {
        const std::string file = (scratch() / "long.jsonl").string();
        // "France" starts at code point 48 of the context.
        std::ofstream(file) << R"({"id": "d", "context": "Rain fell all day. The river rose.\n\nParis is in France. )"
                            << R"(It is old.\n\nCats sleep a lot.", "question": "Where is Paris?", )"
                            << R"("answers": [{"text": "France", "answer_start": 48}]})" << "\n";
        return file;
    }();
    return path;
}

atman_test::program_result long_run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--model", atman_test::model_path(), "--data", document_file(), "--threads", "1", "-q",
                               "--format", "json"});
    return run_program(ATMAN_LONG, args);
}

}  // namespace

TEST_CASE("atman-long: stored exhaustive scores give the comparison a run gives") {
    const std::string stored = (scratch() / "exhaustive.json").string();
    const atman_test::program_result ran =
        long_run({"--top-k", "0,1", "--rank", "score,magnitude", "--write-exhaustive", stored});
    INFO(ran.err);
    REQUIRE(ran.exit_code == 0);
    const json first = json::parse(ran.out);
    CHECK(first["exhaustive"]["source"] == "run");
    REQUIRE(first["hierarchical"].size() == 4);  // every rank with every top_k
    CHECK(first["hierarchical"][2]["rank"] == "magnitude");
    CHECK(first["hierarchical"][2]["top_k"] == 0);
    for (const json& h : first["hierarchical"]) {
        if (h["top_k"] != 0) continue;  // unlimited: every word measured, the exhaustive scores
        CHECK(h["top10_overlap"].get<double>() == 1.0);
        CHECK(h["spearman_all"].get<double>() == Approx(1.0));
        CHECK(h["mAP"].get<double>() == Approx(first["exhaustive"]["mAP"].get<double>()));
        CHECK(h["answer_top10"] == first["exhaustive"]["answer_top10"]);
        CHECK(h["answer_measured"] == 1.0);
    }
    const json& doc = first["documents"][0];
    const auto answer_rank = doc["exhaustive"]["answer_rank"].get<long>();
    CHECK(answer_rank >= 1);
    CHECK(answer_rank <= doc["words"].get<long>());
    for (const json& h : doc["hierarchical"])
        if (h["top_k"] == 0) CHECK(h["answer_rank"] == answer_rank);

    const json file = json::parse(atman_test::read_text(stored));
    CHECK(file["schema"] == "atman.eval-scores/1");
    const json& scores = file["methods"]["atman-exhaustive"]["questions"]["0"];
    CHECK(scores["relevance"].size() == first["documents"][0]["words"].get<std::size_t>());

    const atman_test::program_result read =
        long_run({"--top-k", "0,1", "--rank", "score,magnitude", "--exhaustive-scores", stored});
    INFO(read.err);
    REQUIRE(read.exit_code == 0);
    const json second = json::parse(read.out);
    CHECK(second["exhaustive"]["source"] == "read from " + stored);
    CHECK(second["exhaustive"]["mAP"] == first["exhaustive"]["mAP"]);
    CHECK(second["exhaustive"]["token_forwards"] == first["exhaustive"]["token_forwards"]);  // counted = run
    for (std::size_t k = 0; k < 4; ++k)
        for (const char* key : {"top10_overlap", "spearman_all", "mAP", "token_forwards", "answer_top10"})
            CHECK(second["hierarchical"][k][key] == first["hierarchical"][k][key]);

    json other = file;
    other["model"] = "other.gguf";
    const std::string other_file = (scratch() / "other.json").string();
    std::ofstream(other_file) << other.dump();
    const atman_test::program_result refused = long_run({"--exhaustive-scores", other_file});
    CHECK(refused.exit_code == 1);
    CHECK(refused.err.find("other.gguf") != std::string::npos);

    json renamed = file;
    renamed["methods"] = {{"something-else", file["methods"]["atman-exhaustive"]}};
    const std::string renamed_file = (scratch() / "renamed.json").string();
    std::ofstream(renamed_file) << renamed.dump();
    const atman_test::program_result missing = long_run({"--exhaustive-scores", renamed_file});
    CHECK(missing.exit_code == 1);
    CHECK(missing.err.find("no method \"atman-exhaustive\"") != std::string::npos);
}

TEST_CASE("atman-long: an unknown rank is bad usage") {
    const atman_test::program_result r = long_run({"--rank", "loudest"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--rank") != std::string::npos);
}
