#include "ssa/eval/choice_conversion.h"

#include <cctype>

#include "ssa/util/error.h"

namespace ssa::eval {
namespace {

std::string strip(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\n\r\f\v") - begin + 1);
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::string capitalize(std::string s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    s[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return s;
}

int64_t label_index(const nlohmann::json& label) {
  return label.is_string() ? std::stoll(label.get<std::string>()) : label.get<int64_t>();
}

}  // namespace

std::string hellaswag_preprocess(const std::string& text) {
  std::string s = replace_all(strip(text), " [title]", ". ");
  // re.sub("\\[.*?\\]", "", s): each '[' up to the nearest following ']' goes.
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const size_t close = s[i] == '[' ? s.find(']', i + 1) : std::string::npos;
    if (close != std::string::npos) {
      i = close;
    } else {
      out += s[i];
    }
  }
  // str.replace("  ", " ") is one left-to-right pass: three spaces become two.
  std::string folded;
  for (size_t i = 0; i < out.size(); ++i) {
    folded += out[i];
    if (out[i] == ' ' && i + 1 < out.size() && out[i + 1] == ' ') ++i;
  }
  return folded;
}

ChoiceItem convert_choice_record(const std::string& format, const nlohmann::json& r) {
  try {
    ChoiceItem item;
    if (format == "piqa") {
      item.query = "Question: " + r.at("goal").get<std::string>() + "\nAnswer:";
      item.choices = {r.at("sol1").get<std::string>(), r.at("sol2").get<std::string>()};
      item.gold = label_index(r.at("label"));
    } else if (format == "hellaswag") {
      const std::string ctx = r.contains("ctx_a") ? r.at("ctx_a").get<std::string>() + " " +
                                                        capitalize(r.at("ctx_b").get<std::string>())
                                                  : r.at("ctx").get<std::string>();
      item.query = hellaswag_preprocess(r.at("activity_label").get<std::string>() + ": " + ctx);
      for (const auto& ending : r.at("endings")) item.choices.push_back(hellaswag_preprocess(ending.get<std::string>()));
      item.gold = label_index(r.at("label"));
    } else if (format == "arc") {
      item.query = "Question: " + r.at("question").get<std::string>() + "\nAnswer:";
      const auto& choices = r.at("choices");
      item.choices = choices.at("text").get<std::vector<std::string>>();
      const auto labels = choices.at("label").get<std::vector<std::string>>();
      const auto key = r.at("answerKey").get<std::string>();
      item.gold = -1;
      for (size_t i = 0; i < labels.size(); ++i) {
        if (labels[i] == key) item.gold = static_cast<int64_t>(i);
      }
      if (item.gold < 0) throw UsageError("arc record: answerKey '" + key + "' is not among choices.label");
    } else {
      throw UsageError("unknown multiple-choice format '" + format + "' (piqa | hellaswag | arc)");
    }
    if (item.gold < 0 || item.gold >= static_cast<int64_t>(item.choices.size())) {
      throw UsageError(format + " record: label " + std::to_string(item.gold) + " is not a choice index");
    }
    return item;
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(format + " record lacks a field or has a wrong type: " + e.what());
  } catch (const std::invalid_argument&) {
    throw UsageError(format + " record: the label is not a number");
  }
}

}  // namespace ssa::eval
